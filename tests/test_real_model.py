"""The real-model path, offline: a small random Qwen2 (a real architecture) with a BPE tokenizer and a ChatML
template, conversational JSONL and parquet data, a QA set with aliases and a reference text. No world and no
tiny base are built; known/unknown comes from the probe. The point is the code path, not the scores."""

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
FACTS = [
    ("What is the capital of France?", ["Paris"]),
    ("Who wrote Hamlet?", ["Shakespeare", "William Shakespeare"]),
    ("What is the largest planet?", ["Jupiter"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("What is frozen water called?", ["ice"]),
    ("Which gas do plants take in?", ["carbon dioxide", "CO2"]),
]


def _user(text):
    return [{"role": "user", "content": text}]


def _assistant(text):
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A saved random Qwen2ForCausalLM + BPE ChatML tokenizer, and the four data sources."""
    from datasets import Dataset
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    root = tmp_path_factory.mktemp("real")
    texts = [f"{q} {a[0]}. I don't know." for q, a in FACTS] * 4 + ["The sky is blue and the grass is green."]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=special[1:]
    )
    tok.chat_template = CHATML
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    model_dir = root / "qwen2-tiny"
    Qwen2ForCausalLM(config).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    sft = [{"messages": _user(q) + _assistant(a[0] + ".")} for q, a in FACTS[:4]]
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    pairs = [
        {"prompt": _user(q), "chosen": _assistant(a[0] + "."), "rejected": _assistant("Not sure.")} for q, a in FACTS
    ]
    unknown = _user("What colour is the sky on Mars?")
    pairs.append({"prompt": unknown, "chosen": _assistant("I don't know."), "rejected": _assistant("Green.")})
    Dataset.from_list(pairs).to_parquet(root / "preferences.parquet")
    qa = [{"question": q, "answers": a} for q, a in FACTS]
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa))
    (root / "reference.txt").write_text("The sky is blue.\nThe grass is green.\nWater freezes into ice.\n")
    return root


def _config(real: Path, store: Path) -> dict:
    tiny = {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "max_length": 96,
        "lora": {"r": 4, "lora_alpha": 8},
    }
    return {
        "model": {"name_or_path": str(real / "qwen2-tiny")},
        "data": {
            "sft": str(real / "sft.jsonl"),
            "preferences": {"path": str(real / "preferences.parquet")},
            "eval_questions": str(real / "qa.jsonl"),
            "reference_text": str(real / "reference.txt"),
        },
        "sft": tiny,
        "reward": tiny | {"eval_fraction": 0.3},
        "dpo": tiny,
        "probe": {"samples": 2, "max_new_tokens": 6},
        "eval": {"max_new_tokens": 6, "bootstrap_samples": 20, "sweep_temperatures": [0.0, 1.0], "sweep_samples": 2},
        "compute": {"device": "cpu"},
        "store": {"root": str(store)},
    }


def test_a_real_architecture_on_trl_format_data_needs_no_world(real, tmp_path):
    from alignment import graph
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(_config(real, tmp_path / "runs")))
    cfg = load_config(path)
    order = "data base sft preferences reward reference dpo probe evaluate report".split()
    assert [s.name for s in graph.plan(cfg, ["report"])] == order
    values = graph.run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None))
    store = tmp_path / "runs"
    assert not (store / "world").exists()  # no synthetic world
    assert (
        values["base"].manifest["source"] == str(real / "qwen2-tiny") and not (values["base"].path / "model").exists()
    )
    metrics = json.loads((values["evaluate"].path / "metrics.json").read_text())
    assert metrics["known_from"] == "probe"
    assert sum(metrics["n_questions"].values()) == len(FACTS)
    assert set(metrics) >= {"base", "sft", "dpo", "win_rate_vs_sft", "knowledge_probe"}
    answers = [json.loads(line) for line in (values["evaluate"].path / "answers.jsonl").read_text().splitlines()]
    assert answers[1]["gold"] == ["Shakespeare", "William Shakespeare"]
    report = (values["report"].path / "report.md").read_text()
    assert "measured by the knowledge probe" in report and "| metric | base | sft | dpo |" in report
    inputs = values["sft"].manifest["inputs"]
    assert inputs["demonstrations"].startswith("sha256:") and inputs["base"] == values["base"].id

    from transformers import AutoModelForCausalLM, AutoTokenizer

    exported = values["export"].path / "model"
    model = AutoModelForCausalLM.from_pretrained(exported)  # plain transformers, no PEFT, no adapters
    tok = AutoTokenizer.from_pretrained(exported)
    assert tok.chat_template == CHATML and not (exported / "adapter_config.json").exists()
    prompt = tok.apply_chat_template(_user("Who wrote Hamlet?"), add_generation_prompt=True, return_tensors="pt")
    prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    out = model.generate(prompt, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > prompt.shape[1]
    assert values["export"].manifest["inputs"] == {k: values[k].id for k in ("base", "sft", "dpo")}


def test_a_model_without_a_chat_template_is_refused_before_training(real, tmp_path):
    import shutil

    from alignment import graph
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    bare = tmp_path / "bare"
    shutil.copytree(real / "qwen2-tiny", bare)
    settings = json.loads((bare / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(settings))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    cfg = load_config(None, [f"model.name_or_path={bare}", f"store.root={tmp_path / 'runs'}"])
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None)
    with pytest.raises(ValueError, match=rf"{bare}: the tokenizer has no chat template; set model.chat_template"):
        graph.run_local(ctx, ("base",))
    template = tmp_path / "chatml.jinja"
    template.write_text(CHATML)
    cfg = load_config(None, [f"model.name_or_path={bare}", f"model.chat_template={template}", f"store.root={tmp_path}"])
    base = graph.run_local(StageContext(cfg, ArtifactStore(tmp_path), progress=lambda _: None), ("base",))["base"]
    assert base.manifest["config"]["section"]["chat_template"] == str(template)


def test_the_cli_runs_the_real_model_config_through_the_prefect_flow(harness, real, tmp_path, capsys):
    from flows.cli import main

    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(_config(real, tmp_path / "runs")))
    assert main(["validate", str(path)]) == 0  # every source loads and checks before anything trains
    assert main(["run", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    exported = Path(next(line for line in printed if line.startswith("exported policy: ")).split(": ", 1)[1])
    assert printed[-1].split()[0] == "dpo"  # the run ends with its headline table, the policy's row last
    assert (exported / "model.safetensors").is_file() and (exported / "chat_template.jinja").is_file()
    assert not (tmp_path / "runs" / "world").exists()


def test_a_reward_model_with_every_pair_too_long_is_an_error_not_an_empty_model(real, tmp_path):
    from alignment import graph
    from alignment.config.loading import load_config
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore

    settings = _config(real, tmp_path / "runs")
    settings["reward"]["max_length"] = 8  # every pair is longer: RewardTrainer would silently drop them all
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(settings))
    cfg = load_config(path)
    with pytest.raises(ValueError, match=r"every one of \d+ training pairs is longer than reward.max_length=8"):
        graph.run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), ("reward",))
    assert not (tmp_path / "runs" / "reward").exists()
