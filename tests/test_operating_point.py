"""`alignment operating-point`: where a real-facts recipe puts each model on the preference role (the role its
choices are made on), beside the point the setting asks for there; never the held-out role."""

import math

import pytest
from test_gguf import write_tiny_gguf

from alignment import graph
from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.data.records import read_jsonl
from alignment.studies.operating_point import SHARES, preference_role, table, targets
from flows.cli.parser import main

pytestmark = pytest.mark.slow  # trains SFT and DPO on a tiny GGUF model


def test_each_model_is_measured_on_the_preference_role_beside_what_the_rule_asks(tmp_path, capsys):
    """A tiny llama GGUF knows nothing: the rule asks "I don't know" on every preference question (all unknown)."""
    path, _ = write_tiny_gguf(tmp_path)
    tiny = "{num_train_epochs: 1, per_device_train_batch_size: 8, max_length: 64, lora: {r: 4, lora_alpha: 8}}"
    overrides = [
        f"model.name_or_path={tmp_path}",
        f"model.gguf_file={path.name}",
        f"store.root={tmp_path / 'runs'}",
        "facts={max_entities: 5, reference_documents: 5, max_known_abstention: 0.15}",
        "probe={samples: 1, max_new_tokens: 4}",
        "policies=[dpo]",
        f"sft={tiny}",
        f"dpo={tiny}",
        "compute.device=cpu",
    ]
    cfg = load_config("configs/real-facts.yaml", overrides)
    store = ArtifactStore(cfg.store.root)
    ctx = StageContext(cfg, store, progress=lambda event: None)
    assert targets(cfg) == ("sft", "dpo")
    result = preference_role(ctx, graph.run_local(ctx, targets(cfg)))

    questions = read_jsonl(next((tmp_path / "runs" / "knowledge").glob("knowledge-*")) / "preference_questions.jsonl")
    assert result["asked"] == {"prudence": 1.0, "over_conservativeness": None}  # nothing known: always abstain
    assert math.isnan(result["probe_auroc"])  # no known question to tell apart
    assert [row.model for row in result["models"]] == ["sft", "dpo"]
    for row in result["models"]:
        assert store.get(row.artifact) is not None and row.artifact.startswith(f"{row.model}-")
        assert (row.known, row.unknown) == (0, len(questions)) and set(row.shares) == set(SHARES)
        assert 0.0 <= row.shares["prudence"] <= 1.0 and math.isnan(row.abstention_auroc)
        assert row.shares["prudence"] + row.shares["hallucination_rate"] <= 1.0 + 1e-9
    text = table(result)
    assert text.splitlines()[2].startswith("| asked by the rule | | 1.000 |")
    assert all(row.artifact in text for row in result["models"])

    # the command prints the same table, from the store (nothing is rebuilt: the same artifacts)
    assert main(["operating-point", "configs/real-facts.yaml", *(f"--set={o}" for o in overrides)]) == 0
    assert capsys.readouterr().out.strip() == text


def test_a_config_without_real_facts_is_refused_before_any_work(tmp_path, capsys):
    assert main(["operating-point", "configs/micro.yaml", "--store", str(tmp_path)]) == 2
    assert (
        "configs/micro.yaml: operating-point measures the preference role of a real-facts run"
        in capsys.readouterr().err
    )
    assert not any(tmp_path.iterdir())  # nothing built
