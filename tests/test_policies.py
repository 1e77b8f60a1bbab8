"""The policy registry and its proof, KTO: one row declares a policy; the config, the graph, the evaluation, the
report, export and the deployments follow from it; KTO trains from unpaired thumbs-up/down feedback."""

import json
import re
from pathlib import Path

import pytest
import yaml

from alignment import graph
from alignment.config.base import ConfigError
from alignment.config.data import DataSource
from alignment.config.loading import load_config
from alignment.config.policies import POLICIES, POLICY_NAMES, policy
from alignment.config.run import RunConfig
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.data.from_pairs import balance, unpaired
from alignment.data.records import DataError, write_jsonl
from alignment.data.sources import load

ROOT = Path(__file__).resolve().parents[1]


def test_every_policy_gets_a_config_section_a_stage_and_a_place_in_evaluation_and_export():
    assert POLICY_NAMES == ("dpo", "rloo", "kto", "grpo")
    for row in POLICIES:
        assert isinstance(getattr(RunConfig(), row.name), row.section)
        cfg = load_config(None, [f"policies=[{row.name}]"])
        stage = graph.stages(cfg)[row.name]
        assert stage.build == row.build and stage.section == row.name and stage.trains
        assert stage.function().__name__ == f"{row.name}_stage"
        assert f"{row.name}?" in graph.stages(cfg)["evaluate"].inputs
        assert f"{row.name}?" in graph.stages(cfg)["export"].inputs
        assert row.name in [s.name for s in graph.plan(cfg, ["report"])]
    assert "reward" in policy("rloo").inputs and policy("kto").learns == "feedback"
    with pytest.raises(KeyError, match="no policy 'ppo': the policies are dpo, rloo, kto"):
        policy("ppo")


def test_the_policies_key_accepts_the_registry_and_names_what_is_wrong():
    assert load_config(None, ["policies=[kto, dpo]"]).policies == ["kto", "dpo"]
    with pytest.raises(ConfigError, match="key 'policies.0': Input should be 'dpo', 'rloo', 'kto' or 'grpo'"):
        load_config(None, ["policies=[ppo]"])
    with pytest.raises(ConfigError, match=r"policies \['dpo', 'dpo'\] names a policy twice"):
        load_config(None, ["policies=[dpo, dpo]"])
    with pytest.raises(
        ConfigError, match=r"\(with --set data.feedback=feedback.jsonl\): data.feedback is given but no listed"
    ):
        load_config(None, ["data.feedback=feedback.jsonl"])
    with pytest.raises(ConfigError, match="key 'kto.desirable_weight': Input should be greater than 0"):
        load_config(None, ["kto.desirable_weight=0"])


def test_every_policy_has_a_deployment_running_its_own_flow():
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    for name in POLICY_NAMES:
        assert deployments[name]["entrypoint"] == f"flows/stage_flows.py:{name}_flow"
    from flows import stage_flows

    assert [getattr(stage_flows, f"{name}_flow").name for name in POLICY_NAMES] == [
        "alignment-dpo",
        "alignment-rloo",
        "alignment-kto",
        "alignment-grpo",
    ]
    assert list(stage_flows.rloo_flow.parameters.properties) == ["cfg", "sft", "reward"]
    assert list(stage_flows.kto_flow.parameters.properties) == ["cfg", "sft"]
    assert list(stage_flows.grpo_flow.parameters.properties) == ["cfg", "sft"]


def test_feedback_rows_are_trls_unpaired_format_and_a_bad_row_is_named(tmp_path):
    path = tmp_path / "feedback.jsonl"
    write_jsonl(
        path,
        [
            {"prompt": "Where is Lomé?", "completion": "Togo.", "label": True},
            {"prompt": "Where is Lomé?", "completion": "Ghana.", "label": False},
        ],
    )
    rows = load(DataSource(path=str(path)), "feedback")
    assert rows[0] == {
        "prompt": [{"role": "user", "content": "Where is Lomé?"}],
        "completion": [{"role": "assistant", "content": "Togo."}],
        "label": True,
    }
    for bad, message in (
        ({"prompt": "Q?", "completion": "A.", "label": "yes"}, "column 'label' must be true (thumbs up) or false"),
        ({"prompt": "Q?", "completion": "A."}, "column 'label' is missing"),
        ({"prompt": "Q?", "label": True}, "column 'completion' is missing"),
        ({"prompt": "Q?", "completion": " ", "label": True}, "column 'completion' is an empty string"),
    ):
        write_jsonl(path, [{"prompt": "Q?", "completion": "A.", "label": True}, bad])
        with pytest.raises(DataError, match=re.escape(f"{path}: row 2 (line 2): {message}")):
            load(DataSource(path=str(path)), "feedback")


def test_pairs_become_feedback_each_answer_once():
    prompt = [{"role": "user", "content": "Q?"}]
    right, idk, wrong = ([{"role": "assistant", "content": a}] for a in ("Paris.", "I don't know.", "Lyon."))
    pairs = [
        {"prompt": prompt, "chosen": right, "rejected": idk},
        {"prompt": prompt, "chosen": right, "rejected": wrong},
    ]
    rows = unpaired(pairs)
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == [
        ("Paris.", True),
        ("I don't know.", False),
        ("Lyon.", False),
    ]
    assert balance(rows) == {"desirable": 1, "undesirable": 2, "weighted_ratio": 0.5}
    assert balance(rows, desirable_weight=2.0)["weighted_ratio"] == 1.0


@pytest.mark.slow
def test_kto_trains_beside_dpo_and_is_evaluated_reported_and_exported_like_it(micro, tmp_path, capsys):
    from alignment.evaluation.report import read_metrics
    from flows.cli import main

    cfg = micro("policies=[dpo,kto]", "kto.num_train_epochs=1", "kto.lora={r: 4, lora_alpha: 8}")
    store = ArtifactStore(cfg.store.root)
    values = graph.run_local(StageContext(cfg, store, progress=lambda _: None))
    kto = values["kto"]
    derived = unpaired(values["preferences"].rows("preferences"))
    assert kto.manifest["inputs"] == {
        "base": values["base"].id,
        "sft": values["sft"].id,
        "preferences": values["preferences"].id("preferences"),
    }
    assert kto.metrics["rows"] == len(derived) and kto.metrics["steps"] > 0
    assert kto.metrics["desirable"] + kto.metrics["undesirable"] == len(derived)
    assert (kto.path / "adapter" / "adapter_model.safetensors").is_file()
    metrics = read_metrics(values["evaluate"].path)
    assert metrics["policies"] == ["dpo", "kto"] and set(metrics["kto"]) == set(metrics["dpo"])
    report = (values["report"].path / "report.md").read_text()
    assert "| metric | base | sft | dpo | kto |" in report and "## Win-rate of kto vs SFT" in report
    assert f"- KTO: {kto.id}" in report

    config = ["--config", str(ROOT / "configs/micro.yaml"), "--store", str(store.root)]
    assert main(["export", kto.id, *config]) == 0
    [export] = [a for a in (store.root / "export").iterdir() if kto.id in (a / "manifest.json").read_text()]
    assert capsys.readouterr().out.splitlines()[-1] == f"exported policy: {export / 'model'}"
    assert json.loads((export / "manifest.json").read_text())["inputs"]["kto"] == kto.id
    assert (export / "model" / "model.safetensors").is_file()

    # a real thumbs button: a feedback file, unbalanced (2 up for 6 down), rebalanced by TRL's weights
    feedback = tmp_path / "thumbs.jsonl"
    questions = [f"What does entity {i} trade?" for i in range(4)]
    rows = [{"prompt": q, "completion": "I don't know.", "label": i < 2} for i, q in enumerate(questions)]
    rows += [{"prompt": q, "completion": "Salt.", "label": False} for q in questions]
    write_jsonl(feedback, rows)
    given = micro("policies=[kto]", f"data.feedback={feedback}", "kto.num_train_epochs=1", "kto.desirable_weight=3.0")
    trained = graph.run_local(StageContext(given, store, progress=lambda _: None), ("kto",))["kto"]
    assert trained.manifest["inputs"]["feedback"].startswith("sha256:")
    assert trained.manifest["inputs"]["sft"] == values["sft"].id  # the same SFT model: only KTO trained again
    assert (trained.metrics["desirable"], trained.metrics["undesirable"], trained.metrics["weighted_ratio"]) == (
        2,
        6,
        1.0,
    )
    assert trained.manifest["config"]["section"]["desirable_weight"] == 3.0


def test_the_gold_reward_scores_correct_abstain_and_wrong():
    from alignment.evaluation.metrics import Judge
    from alignment.methods.grpo import gold_reward

    reward = gold_reward(Judge())
    completions = [[{"role": "assistant", "content": a}] for a in ("Lomé.", "I don't know.", "Accra.")]
    assert reward(["q"] * 3, completions, [["Lome"]] * 3) == [1.0, 0.0, -1.0]
    assert reward(["q"], ["Paris"], [["Paris"]]) == [1.0]  # standard (string) completions too
    from alignment.config.grpo import GoldRewards

    binary = gold_reward(Judge(), GoldRewards(idk=-1.0))  # abstaining as bad as being wrong
    assert binary(["q"] * 3, completions, [["Lome"]] * 3) == [1.0, -1.0, -1.0]
    with pytest.raises(ConfigError, match=r"correct \(0.0\) must be above wrong \(0.0\)"):
        load_config(None, ["grpo.rewards={correct: 0, wrong: 0}"])


def test_questions_for_grpo_are_required_and_never_ignored(tmp_path):
    with pytest.raises(ConfigError, match="data.preference_questions is given but nothing reads it"):
        load_config(None, ["data.preference_questions=q.jsonl"])
    assert load_config(None, ["policies=[grpo]", "data.preference_questions=q.jsonl"]).policies == ["grpo"]
    # RLOO gold-scores its rollouts with them (the over-optimisation curve)
    assert load_config(None, ["policies=[rloo]", "data.preference_questions=q.jsonl"]).policies == ["rloo"]
    own = [f"data.{k}=x.jsonl" for k in ("sft", "preferences", "eval_questions", "reference_text")]
    with pytest.raises(ConfigError, match=r"policies \['grpo'\] learn from questions with accepted answers"):
        load_config(None, ["policies=[grpo]", *own])


@pytest.mark.slow
def test_grpo_trains_beside_dpo_against_the_gold_judge(micro):
    from alignment.evaluation.report import read_metrics

    cfg = micro("policies=[dpo,grpo]", "grpo.num_train_epochs=1", "grpo.lora={r: 4, lora_alpha: 8}")
    values = graph.run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None))
    grpo = values["grpo"]
    questions = values["preferences"].learning_rows("questions")
    assert grpo.manifest["inputs"] == {
        "base": values["base"].id,
        "sft": values["sft"].id,
        "questions": values["preferences"].id("preference_questions"),
    }
    assert grpo.metrics["questions"] == len(questions) and grpo.metrics["steps"] > 0
    assert -1.0 <= grpo.metrics["final_reward"] <= 1.0 and "reward" not in grpo.manifest["inputs"]
    metrics = read_metrics(values["evaluate"].path)
    assert metrics["policies"] == ["dpo", "grpo"] and set(metrics["grpo"]) == set(metrics["dpo"])
    assert "## Win-rate of grpo vs SFT" in (values["report"].path / "report.md").read_text()


@pytest.mark.slow
def test_grpo_can_start_from_the_model_as_given_and_is_evaluated_and_exported_without_sft(micro):
    """TruthRL's recipe: GRPO on the model as given, no "I don't know" SFT first; its adapter is merged into the
    base alone wherever the policy is used."""
    from alignment.models.refs import policy_adapters

    cfg = micro("policies=[grpo]", "grpo.start_from=base", "grpo.num_train_epochs=1", "grpo.lora={r: 4, lora_alpha: 8}")
    values = graph.run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None))
    grpo, base, sft = values["grpo"], values["base"], values["sft"]
    assert set(grpo.manifest["inputs"]) == {"base", "questions"} and grpo.manifest["model_chain"] == [base.id]
    assert policy_adapters(grpo, sft) == [grpo.path / "adapter"]
    assert values["export"].manifest["model_chain"] == [base.id, grpo.id]
    assert "sft" not in values["export"].manifest["inputs"]
    on_sft = graph.run_local(
        StageContext(
            micro("policies=[grpo]", "grpo.num_train_epochs=1", "grpo.lora={r: 4, lora_alpha: 8}"),
            ArtifactStore(cfg.store.root),
            progress=lambda _: None,
        ),
        ("grpo",),
    )["grpo"]
    assert on_sft.id != grpo.id and policy_adapters(on_sft, sft) == [sft.path / "adapter", on_sft.path / "adapter"]


def test_the_overoptimisation_curve_averages_trl_logs_over_its_windows_and_survives_a_resume(tmp_path):
    from alignment.evaluation.metrics import Judge
    from alignment.methods.rloo import Curve, gold_score

    completions = [[{"role": "assistant", "content": a}] for a in ("Lomé.", "I don't know.", "Accra.", "Lomé.")]
    gold = gold_score(Judge())
    assert gold(["q"] * 4, completions, [["Lome"], ["Lome"], ["Lome"], None]) == [1.0, 0.0, -1.0, None]

    store = tmp_path / "curve.json"
    curve = Curve(every=4, store=store, proxy_key="rewards/rm/mean", gold_key="rewards/gold/mean")

    def log(step: int, kl: float, proxy: float, gold: float | None) -> None:
        curve.add(step, 9, {"reward": proxy, "kl": kl, "rewards/rm/mean": proxy, "rewards/gold/mean": gold})

    assert [s for s in range(1, 10) if curve.due(s, 9)] == [1, 4, 8, 9]
    log(1, 0.0, -1.0, -0.5)
    log(2, 0.1, 0.0, None)  # TRL logs (logging_steps 2) between points: no window of its own
    log(4, 0.3, 1.0, 0.5)
    curve.add(4, 9, {"train_runtime": 1.0})  # the end-of-training summary: no rollout metrics
    assert curve.points == [
        {"step": 1, "steps": 1, "kl": 0.0, "proxy_reward": -1.0, "gold_reward": -0.5},
        {"step": 4, "steps": 3, "kl": (0.1 + 2 * 0.3) / 3, "proxy_reward": 2 / 3, "gold_reward": 0.5},
    ]
    log(6, 0.4, 2.0, 0.0)  # then the run is killed; it resumes from the checkpoint at step 4
    resumed = Curve(every=4, store=store, proxy_key="rewards/rm/mean", gold_key="rewards/gold/mean")
    resumed.load(4)
    assert resumed.points == curve.points
    curve = resumed
    log(8, 0.5, 3.0, 1.0)
    assert curve.points[-1] == {"step": 8, "steps": 4, "kl": 0.5, "proxy_reward": 3.0, "gold_reward": 1.0}
