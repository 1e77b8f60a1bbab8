"""Ours vs plain TRL, side by side in one run: tokens/s, peak memory and their ratio per training method.

For each method (SFT, reward model, DPO) the same model, data, batch size and number of steps train twice,
each in its own process (so peak memory is that trial's alone): once with plain TRL (the method's config
class with its defaults, a PEFT LoRA of the same rank on all linear layers), once the way the pipeline trains
(``alignment.sft.train_sft`` etc., with the pipeline's default section). A Trainer callback times every
optimizer step; the first ``warmup`` steps are left out. Tokens are the non-padding tokens of the examples a
step consumes (chat template applied, truncated like the trainer), so the two variants count alike.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

METHODS = ("sft", "reward", "dpo")
VARIANTS = ("plain", "ours")


@dataclass(frozen=True)
class BenchPreset:
    """A model shape and a workload: ``shape`` are LlamaConfig arguments of a randomly initialised model."""

    shape: dict[str, int]
    batch_size: int
    steps: int
    warmup: int
    bf16: bool
    description: str
    max_length: int = 128  # both variants truncate here
    long_rows: bool = False  # answers made of world documents up to max_length tokens, not the world's short QA


PRESETS = {
    "tiny": BenchPreset(
        {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 384},
        batch_size=16,
        steps=40,
        warmup=5,
        bf16=False,
        description="the world's tiny model shape (0.9M parameters), CPU, fp32",
    ),
    "0.5b": BenchPreset(
        {
            "hidden_size": 896,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "intermediate_size": 4864,
        },
        batch_size=16,
        steps=30,
        warmup=5,
        bf16=True,
        description="Qwen2-0.5B's shape (random weights, the world's vocabulary), sequences of 512 tokens, bf16, "
        "for a GPU",
        max_length=512,
        long_rows=True,
    ),
}


@dataclass
class StepTimes:
    """Per-step wall times of one trial, and its peak memory."""

    seconds: list[float] = field(default_factory=list)
    peak_mib: float = 0.0


def step_timer(times: StepTimes):
    """A Trainer callback appending each optimizer step's wall time to ``times.seconds``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.seconds.append(time.perf_counter() - self.start)

    return StepTimer()


def build_model(preset: BenchPreset, out: Path) -> Path:
    """A randomly initialised Llama-style model of the preset's shape with the world's tokenizer and chat
    template, saved under ``out / "model"``; the world's data files under ``out / "data"``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignment.config import WorldConfig
    from alignment.tokenizer import train_tokenizer
    from alignment.world import tokenizer_texts, write_world

    write_world(WorldConfig(), out / "data")
    tok = train_tokenizer(tokenizer_texts(out / "data"))
    config = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **preset.shape,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    return out / "model"


def _rows(data: Path, method: str, long_rows: bool = False, max_length: int = 128) -> list[dict]:
    """The world's demonstrations or pairs (TRL conversational rows); with ``long_rows`` every answer is
    replaced by world documents of about ``max_length`` words (one word is one token of the world's tokenizer)."""
    from alignment.config import DataSource
    from alignment.sources import load

    name, kind = ("demonstrations.jsonl", "sft") if method == "sft" else ("preferences.jsonl", "preferences")
    rows = load(DataSource(path=str(data / name)), kind)
    if not long_rows:
        return rows
    words = (data / "pretrain.txt").read_text().split()
    size = max_length - 16  # room for the question and the template's markers

    def text(i: int) -> str:
        start = (i * 97) % (len(words) - size)
        return " ".join(words[start : start + size])

    answers = ("completion",) if method == "sft" else ("chosen", "rejected")
    return [
        r | {a: [{"role": "assistant", "content": text(2 * i + j)}] for j, a in enumerate(answers)}
        for i, r in enumerate(rows)
    ]


def tokens_per_example(model_dir: Path, rows: list[dict], method: str, max_length: int) -> float:
    """Mean non-padding tokens of one example as the trainer sees it (both answers of a pair)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)

    def count(messages: list[dict]) -> int:
        ids = tok.apply_chat_template(messages, tokenize=True)
        return min(len(ids["input_ids"] if hasattr(ids, "keys") else ids), max_length)

    if method == "sft":
        return statistics.mean(count(r["prompt"] + r["completion"]) for r in rows)
    return statistics.mean(count(r["prompt"] + r["chosen"]) + count(r["prompt"] + r["rejected"]) for r in rows)


def _peak_mib(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_trial(spec: dict) -> dict:
    """One trial (a method, a variant) in this process; returns its step times and peak memory."""
    import torch

    from alignment.config import DPOSection, RewardSection, SFTSection
    from alignment.context import Device, TrainingRun
    from alignment.model_refs import BaseRef

    method, variant, model_dir = spec["method"], spec["variant"], spec["model_dir"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = spec["bf16"] and device == "cuda"
    rows = _rows(Path(spec["data"]), method, spec["long_rows"], spec["max_length"])
    times = StepTimes()
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    steps = {"max_steps": spec["steps"], "per_device_train_batch_size": spec["batch_size"]}
    steps["max_length"] = spec["max_length"]
    if variant == "ours":
        section = {"sft": SFTSection, "reward": RewardSection, "dpo": DPOSection}[method](**steps, logging_steps=1000)
        run = TrainingRun(out, Device(device, bf16), 0, lambda _: None, method, callbacks=(step_timer(times),))
        base = BaseRef(model_dir, {"dtype": "bfloat16"} if bf16 else {})
        if method == "sft":
            from alignment.sft import train_sft

            train_sft(section, base, rows, run)
        elif method == "reward":
            from alignment.reward import train_reward

            train_reward(section, base, rows, run)
        else:
            from alignment.dpo import train_dpo

            train_dpo(section, base, [], rows, run)
    else:
        _plain_trial(method, model_dir, rows, out, steps | {"use_cpu": device == "cpu", "bf16": bf16}, times)
    times.peak_mib = _peak_mib(device)
    return asdict(times)


def _plain_trial(method: str, model_dir: str, rows: list[dict], out: Path, args: dict, times: StepTimes) -> None:
    """Plain TRL: the method's config with its defaults (plus steps, batch, device and no saving), a LoRA of
    the same rank on all linear layers."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

    cls, trainer_cls, task = {
        "sft": (SFTConfig, SFTTrainer, "CAUSAL_LM"),
        "reward": (RewardConfig, RewardTrainer, "SEQ_CLS"),
        "dpo": (DPOConfig, DPOTrainer, "CAUSAL_LM"),
    }[method]
    config = cls(output_dir=str(out / "trainer"), save_strategy="no", report_to="none", disable_tqdm=True, **args)
    tok = AutoTokenizer.from_pretrained(model_dir)
    dtype = {"dtype": "bfloat16"} if args["bf16"] else {}
    if method == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, **dtype)
        model.config.pad_token_id = tok.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **dtype)
    if args["use_cpu"] is False:
        model = model.to("cuda")
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type=task),
    )
    trainer.add_callback(step_timer(times))
    trainer.train()


def summarize(times: list[float], warmup: int, tokens_per_step: float) -> dict[str, float]:
    """Tokens/s from the steps after warm-up: the median, and the slowest and fastest step's."""
    timed = times[warmup:] or times
    rates = sorted(tokens_per_step / t for t in timed)
    return {"tokens_per_s": tokens_per_step / statistics.median(timed), "min": rates[0], "max": rates[-1]}


def bench(
    preset_name: str,
    out: Path,
    methods: tuple[str, ...] = METHODS,
    steps: int | None = None,
    shape_of: str | None = None,
) -> dict:
    """Run every (method, variant) trial of a preset in its own process; returns and writes the table
    (``bench.json`` and ``bench.md`` under ``out``)."""
    preset = PRESETS[preset_name]
    if shape_of:  # the preset's workload on another preset's model shape (the GPU preset started on a CPU)
        preset = replace(preset, shape=PRESETS[shape_of].shape)
    steps = steps or preset.steps
    warmup = min(preset.warmup, steps - 1)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        model_dir = build_model(preset, work)
        rows_table = []
        for method in methods:
            rows = _rows(work / "data", method, preset.long_rows, preset.max_length)
            tokens = tokens_per_example(model_dir, rows, method, preset.max_length)
            result: dict[str, Any] = {"method": method}
            for variant in VARIANTS:
                spec = {"method": method, "variant": variant, "model_dir": str(model_dir), "data": str(work / "data")}
                spec |= {"steps": steps, "batch_size": preset.batch_size, "bf16": preset.bf16}
                spec |= {"max_length": preset.max_length, "long_rows": preset.long_rows}
                spec["out"] = str(work / f"{method}-{variant}")
                trial = _subprocess_trial(spec, work)
                result[variant] = summarize(trial["seconds"], warmup, tokens * preset.batch_size) | {
                    "peak_mib": trial["peak_mib"],
                    "steps_timed": len(trial["seconds"]) - warmup,
                }
            result["ratio"] = result["ours"]["tokens_per_s"] / result["plain"]["tokens_per_s"]
            result["memory_ratio"] = result["ours"]["peak_mib"] / result["plain"]["peak_mib"]
            rows_table.append(result)
    table = {"preset": preset_name, "description": preset.description, "batch_size": preset.batch_size}
    table |= {"shape": preset.shape, "max_length": preset.max_length}
    table |= {"steps": steps, "warmup": warmup, "methods": rows_table}
    (out / "bench.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "bench.md").write_text(render(table))
    return table


def _subprocess_trial(spec: dict, work: Path) -> dict:
    path = work / f"{spec['method']}-{spec['variant']}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "alignment.bench", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench trial {spec['method']}/{spec['variant']} failed:\n{done.stderr[-3000:]}")
    return json.loads(path.with_suffix(".result.json").read_text())


def render(table: dict) -> str:
    """The table as Markdown: tokens/s (median, min-max over timed steps), peak memory and the ratios."""
    lines = [
        f"# Bench: ours vs plain TRL ({table['preset']}: {table['description']})",
        "",
        f"Batch {table['batch_size']}, sequences up to {table['max_length']} tokens, {table['steps']} steps, the "
        f"first {table['warmup']} left out; model shape {table['shape']}; tokens are "
        "non-padding tokens. Peak memory: GPU allocator peak, or the process's peak RSS on CPU.",
        "",
        "| method | plain TRL tokens/s | ours tokens/s | ours / plain | plain peak MiB | ours peak MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in table["methods"]:
        p, o = r["plain"], r["ours"]
        lines.append(
            f"| {r['method']} | {p['tokens_per_s']:,.0f} ({p['min']:,.0f}-{p['max']:,.0f}) | "
            f"{o['tokens_per_s']:,.0f} ({o['min']:,.0f}-{o['max']:,.0f}) | {r['ratio']:.2f} | "
            f"{p['peak_mib']:,.0f} | {o['peak_mib']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    spec_path = Path(sys.argv[1])
    spec_path.with_suffix(".result.json").write_text(json.dumps(run_trial(json.loads(spec_path.read_text()))))
