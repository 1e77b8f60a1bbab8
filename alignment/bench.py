"""Ours vs plain TRL, side by side in one run: tokens/s, peak memory, MFU and their ratio per training method,
and the evaluation's generation throughput against plain ``generate``.

For each method (SFT, reward model, DPO, RLOO) the same model, data, batch size and number of steps train
twice, each in its own process (so peak memory is that trial's alone): once with plain TRL (the method's
config class with its defaults, a PEFT LoRA of the same rank on all linear layers), once the way the pipeline
trains (``alignment.sft.train_sft`` etc., with the pipeline's default section). A Trainer callback times every
optimizer step; the first ``warmup`` steps are left out. Tokens are the non-padding tokens of the examples a
step consumes (chat template applied, truncated like the trainer), so the two variants count alike; for RLOO,
the prompt and sampled completion tokens the trainer itself counts (``state.num_input_tokens_seen``).

Generation answers the world's held-out questions greedily: ours is the evaluation's batched, left-padded,
KV-cached ``generate_answers``; plain is ``model.generate`` called per question with default settings.
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

METHODS = ("sft", "reward", "dpo", "rloo", "generation")
TRAINING = ("sft", "reward", "dpo", "rloo")
VARIANTS = ("plain", "ours")
GENERATION_PASSES = 3  # passes over the questions per generation trial, the first one left out
# Dense bf16 peak of the GPUs we know (spec sheets, TFLOP/s), for MFU; another GPU: --peak-tflops.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


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
    completion_length: int = 8  # RLOO's sampled completions and the generated answers, in tokens
    questions: int = 256  # held-out questions per generation pass


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
        completion_length=64,
        questions=32,  # plain `generate` answers one question at a time: 64 tokens each
    ),
}


@dataclass
class StepTimes:
    """Per-step wall times of one trial, the tokens each step's trainer counted itself (RLOO), its peak memory
    and the model's parameter count (for MFU)."""

    seconds: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    wall_seconds: float = 0.0  # the whole trial: loading, data preparation (DPO's reference precompute), all steps
    parameters: int = 0
    device_name: str = "cpu"


def step_timer(times: StepTimes):
    """A Trainer callback appending each optimizer step's wall time to ``times.seconds`` and the tokens the
    trainer counted in it (``state.num_input_tokens_seen``) to ``times.tokens``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start, self.seen = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            times.seconds.append(time.perf_counter() - self.start)
            times.tokens.append(float(state.num_input_tokens_seen - self.seen))

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


def build_reward_model(model_dir: Path, out: Path) -> None:
    """RLOO's reward model: the model with an (untrained) LoRA and score head, saved both as the adapter our
    stage loads (``out / "reward-adapter"``) and merged, as the model directory plain TRL is given
    (``out / "reward-model"``)."""
    import torch
    from peft import get_peft_model

    from alignment.config import LoraSettings
    from alignment.modeling import load_tokenizer, lora_config, reward_backbone

    torch.manual_seed(1)
    model = get_peft_model(reward_backbone(model_dir), lora_config(LoraSettings(), "SEQ_CLS"))
    model.save_pretrained(out / "reward-adapter")
    model.merge_and_unload().save_pretrained(out / "reward-model")
    load_tokenizer(model_dir).save_pretrained(out / "reward-model")


def _rows(data: Path, method: str, long_rows: bool = False, max_length: int = 128) -> list[dict]:
    """The world's demonstrations or pairs (TRL conversational rows); with ``long_rows`` every answer is
    replaced by world documents of about ``max_length`` words (one word is one token of the world's tokenizer)."""
    from alignment.config import DataSource
    from alignment.rloo import unique_prompts
    from alignment.run_data import WORLD_QA_COLUMNS
    from alignment.sources import load

    name, kind = ("demonstrations.jsonl", "sft") if method == "sft" else ("preferences.jsonl", "preferences")
    if method == "generation":
        name, kind = "eval_questions.jsonl", "questions"
    columns = WORLD_QA_COLUMNS if method == "generation" else {}
    rows = load(DataSource(path=str(data / name), columns=columns), kind)
    if method == "rloo":
        return unique_prompts(rows)
    if not long_rows or method == "generation":
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


def _workload(spec: dict) -> dict:
    """The training arguments both variants share: steps, batch, and the length bound of the method (RLOO bounds
    its sampled completions, the others their tokenized sequences)."""
    workload = {"max_steps": spec["steps"], "per_device_train_batch_size": spec["batch_size"]}
    if spec["method"] == "rloo":
        return workload | {"max_completion_length": spec["completion_length"]}
    return workload | {"max_length": spec["max_length"]}


def run_trial(spec: dict) -> dict:
    """One trial (a method, a variant) in this process; returns its step times and peak memory."""
    import torch

    method = spec["method"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = spec["bf16"] and device == "cuda"
    rows = _rows(Path(spec["data"]), method, spec["long_rows"], spec["max_length"])
    times = StepTimes(device_name=torch.cuda.get_device_name() if device == "cuda" else "cpu")
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if method == "generation":
        _generation_trial(spec, rows, device, bf16, times)
    elif spec["variant"] == "ours":
        _our_trial(spec, rows, device, bf16, times)
    else:
        _plain_trial(spec, rows, out, _workload(spec) | {"use_cpu": device == "cpu", "bf16": bf16}, times)
    times.wall_seconds = time.perf_counter() - start
    times.peak_mib = _peak_mib(device)
    return asdict(times)


def _our_trial(spec: dict, rows: list[dict], device: str, bf16: bool, times: StepTimes) -> None:
    """The pipeline's own training function with its default section (and the preset's steps, batch and lengths)."""
    from alignment.config import DPOSection, JudgeConfig, RewardSection, RLOOSection, SFTSection
    from alignment.context import Device, TrainingRun
    from alignment.model_refs import BaseRef

    method, model_dir, out = spec["method"], spec["model_dir"], Path(spec["out"])
    sections = {"sft": SFTSection, "reward": RewardSection, "dpo": DPOSection, "rloo": RLOOSection}
    overrides = spec.get("overrides", {}).get(method, {})
    section = sections[method](**(_workload(spec) | {"logging_steps": 1000} | overrides))
    callbacks = (step_timer(times), _parameter_counter(times))
    run = TrainingRun(out, Device(device, bf16), 0, lambda _: None, method, callbacks=callbacks)
    base = BaseRef(model_dir, {"dtype": "bfloat16"} if bf16 else {})
    if method == "sft":
        from alignment.sft import train_sft

        train_sft(section, base, rows, run)
    elif method == "reward":
        from alignment.reward import train_reward

        train_reward(section, base, rows, run)
    elif method == "dpo":
        from alignment.dpo import train_dpo

        train_dpo(section, base, [], rows, run)
    else:
        from alignment.metrics import make_judge
        from alignment.rloo import Curve, train_rloo

        questions = _rows(Path(spec["data"]), "generation")[: section.curve_questions]
        curve = Curve(questions, make_judge(JudgeConfig()), section.curve_every_steps, spec["completion_length"])
        train_rloo(section, base, ([], Path(spec["work"]) / "reward-adapter"), rows, run, curve)


def _parameter_counter(times: StepTimes):
    """A Trainer callback recording the trained model's parameter count (LoRA included) for MFU."""
    from transformers import TrainerCallback

    class ParameterCounter(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            times.parameters = sum(p.numel() for p in model.parameters())

    return ParameterCounter()


def _generation_trial(spec: dict, rows: list[dict], device: str, bf16: bool, times: StepTimes) -> None:
    """Greedy answers to every held-out question, ``spec["steps"]`` times (the first ``warmup`` left out): ours
    batched (``generate_answers``), plain one ``model.generate`` per question with default settings. A "step" is
    one pass over the questions; its tokens are the generated tokens up to EOS."""
    import torch

    from alignment.generation import chat_prompts, generate_answers, generation_config
    from alignment.modeling import load_causal_lm, load_tokenizer

    model = load_causal_lm(spec["model_dir"], device=device)
    if bf16:
        model = model.to(torch.bfloat16)
    tok = load_tokenizer(spec["model_dir"])
    questions = [r["question"] for r in rows][: spec["questions"]]
    n = spec["completion_length"]
    times.parameters = sum(p.numel() for p in model.parameters())
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        if spec["variant"] == "ours":
            answers = generate_answers(model, tok, questions, generation_config(tok, n))
            generated = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
        else:
            generated = []
            with torch.no_grad():
                for prompt in chat_prompts(tok, questions):
                    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(device)
                    new = model.generate(**enc, max_new_tokens=n)[0, enc["input_ids"].shape[1] :]
                    generated.append(int((new != tok.eos_token_id).sum()))
        times.seconds.append(time.perf_counter() - start)
        times.tokens.append(float(sum(generated)))


def _plain_trial(spec: dict, rows: list[dict], out: Path, args: dict, times: StepTimes) -> None:
    """Plain TRL: the method's config with its defaults (plus steps, batch, lengths, device and no saving), a
    LoRA of the same rank on all linear layers; RLOO is given the same reward model as a model directory."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import (
        DPOConfig,
        DPOTrainer,
        RewardConfig,
        RewardTrainer,
        RLOOConfig,
        RLOOTrainer,
        SFTConfig,
        SFTTrainer,
    )

    method, model_dir = spec["method"], spec["model_dir"]
    cls, trainer_cls, task = {
        "sft": (SFTConfig, SFTTrainer, "CAUSAL_LM"),
        "reward": (RewardConfig, RewardTrainer, "SEQ_CLS"),
        "dpo": (DPOConfig, DPOTrainer, "CAUSAL_LM"),
        "rloo": (RLOOConfig, RLOOTrainer, "CAUSAL_LM"),
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
    extra = {"reward_funcs": str(Path(spec["work"]) / "reward-model")} if method == "rloo" else {}
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type=task),
        **extra,
    )
    trainer.add_callback(step_timer(times))
    trainer.add_callback(_parameter_counter(times))
    trainer.train()


def summarize(seconds: list[float], tokens: list[float], warmup: int) -> dict[str, float]:
    """Tokens/s of the steps after warm-up: the median step's, and the slowest and fastest step's."""
    rates = [n / t for n, t in zip(tokens, seconds, strict=True)]
    timed = sorted(rates[warmup:] or rates)
    return {"tokens_per_s": statistics.median(timed), "min": timed[0], "max": timed[-1]}


def peak_flops(device_name: str, peak_tflops: float | None = None) -> float | None:
    """The device's dense bf16 peak in FLOP/s: ``peak_tflops`` if given, else from ``PEAK_TFLOPS`` by name;
    None on a CPU or an unknown GPU (no MFU then)."""
    if peak_tflops:
        return peak_tflops * 1e12
    found = [tflops for name, tflops in PEAK_TFLOPS.items() if name in device_name]
    return found[0] * 1e12 if found and device_name != "cpu" else None


def mfu(method: str, tokens_per_s: float, parameters: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation: 6 FLOPs per parameter per trained token (forward and backward; attention's own
    FLOPs and DPO's reference forward not counted, so it is a lower bound), 2 per generated token; RLOO mixes
    generation and training, so it gets none."""
    if peak is None or method == "rloo" or not parameters:
        return None
    return (2 if method == "generation" else 6) * parameters * tokens_per_s / peak


def bench(
    preset_name: str,
    out: Path,
    *,
    methods: tuple[str, ...] = METHODS,
    steps: int | None = None,
    shape_of: str | None = None,
    peak_tflops: float | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """Run every (method, variant) trial of a preset in its own process; returns and writes the table
    (``bench.json`` and ``bench.md`` under ``out``). ``overrides`` set fields of our sections, by method (e.g.
    ``{"dpo": {"precompute_ref_log_probs": True}}``), to measure a speed-up switch against plain TRL."""
    preset = PRESETS[preset_name]
    if shape_of:  # the preset's workload on another preset's model shape (the GPU preset started on a CPU)
        preset = replace(preset, shape=PRESETS[shape_of].shape)
    steps = steps or preset.steps
    warmup = min(preset.warmup, steps - 1)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        model_dir = build_model(preset, work)
        if "rloo" in methods:
            build_reward_model(model_dir, work)
        rows_table = []
        for method in methods:
            rows = _rows(work / "data", method, preset.long_rows, preset.max_length)
            passes = min(steps, GENERATION_PASSES) if method == "generation" else steps
            method_warmup = min(1, passes - 1) if method == "generation" else warmup
            counted = method in ("rloo", "generation")  # tokens counted by the trial itself, step by step
            per_example = 0.0 if counted else tokens_per_example(model_dir, rows, method, preset.max_length)
            result: dict[str, Any] = {"method": method}
            for variant in VARIANTS:
                spec = {"method": method, "variant": variant, "model_dir": str(model_dir), "data": str(work / "data")}
                spec |= {"steps": passes, "batch_size": preset.batch_size, "bf16": preset.bf16, "work": str(work)}
                spec |= {"max_length": preset.max_length, "long_rows": preset.long_rows}
                spec |= {"completion_length": preset.completion_length, "questions": preset.questions}
                spec |= {"out": str(work / f"{method}-{variant}"), "overrides": overrides or {}}
                trial = _subprocess_trial(spec, work)
                tokens = trial["tokens"] if counted else [per_example * preset.batch_size] * len(trial["seconds"])
                summary = summarize(trial["seconds"], tokens, method_warmup)
                peak = peak_flops(trial["device_name"], peak_tflops)
                result[variant] = summary | {
                    "peak_mib": trial["peak_mib"],
                    "wall_seconds": trial["wall_seconds"],
                    "steps_timed": len(trial["seconds"]) - method_warmup,
                    "mfu": mfu(method, summary["tokens_per_s"], trial["parameters"], peak),
                    "device": trial["device_name"],
                }
                if method == "generation":
                    answers = min(len(rows), preset.questions)
                    result[variant]["answers_per_s"] = answers / statistics.median(trial["seconds"][method_warmup:])
            result["ratio"] = result["ours"]["tokens_per_s"] / result["plain"]["tokens_per_s"]
            result["memory_ratio"] = result["ours"]["peak_mib"] / result["plain"]["peak_mib"]
            rows_table.append(result)
    table = {"preset": preset_name, "description": preset.description, "batch_size": preset.batch_size}
    table |= {"shape": preset.shape, "max_length": preset.max_length, "completion_length": preset.completion_length}
    table |= {"steps": steps, "warmup": warmup, "questions": preset.questions, "overrides": overrides or {}}
    table["methods"] = rows_table
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


def _mfu(trial: dict) -> str:
    return "-" if trial.get("mfu") is None else f"{100 * trial['mfu']:.1f}%"


def render(table: dict) -> str:
    """The table as Markdown: tokens/s (median, min-max over timed steps), peak memory, MFU and the ratios."""
    lines = [
        f"# Bench: ours vs plain TRL ({table['preset']}: {table['description']})",
        "",
        f"Batch {table['batch_size']}, sequences up to {table['max_length']} tokens, {table['steps']} steps, the "
        f"first {table['warmup']} left out; model shape {table['shape']}; tokens are "
        "non-padding tokens. Peak memory: GPU allocator peak, or the process's peak RSS on CPU. RLOO samples "
        f"completions of up to {table['completion_length']} tokens; its tokens are prompt and completion tokens. "
        "MFU: 6 FLOPs per parameter per trained token (a lower bound), on a GPU whose peak is known. Trial s: the "
        "whole trial (loading the model, preparing the data, DPO's reference precompute, every step)."
        + (f" Ours with {table['overrides']}." if table.get("overrides") else ""),
        "",
        "| method | plain TRL tokens/s | ours tokens/s | ours / plain | plain peak MiB | ours peak MiB | plain MFU "
        "| ours MFU | plain trial s | ours trial s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    generation = None
    for r in table["methods"]:
        if r["method"] == "generation":
            generation = r
            continue
        p, o = r["plain"], r["ours"]
        lines.append(
            f"| {r['method']} | {p['tokens_per_s']:,.0f} ({p['min']:,.0f}-{p['max']:,.0f}) | "
            f"{o['tokens_per_s']:,.0f} ({o['min']:,.0f}-{o['max']:,.0f}) | {r['ratio']:.2f} | "
            f"{p['peak_mib']:,.0f} | {o['peak_mib']:,.0f} | {_mfu(p)} | {_mfu(o)} | {p['wall_seconds']:.1f} | "
            f"{o['wall_seconds']:.1f} |"
        )
    if generation:
        p, o = generation["plain"], generation["ours"]
        lines += [
            "",
            f"Generation: greedy answers of up to {table['completion_length']} tokens to "
            f"{table.get('questions', 'the')} held-out questions, {generation['plain']['steps_timed']} timed "
            "passes; plain is one `model.generate` per question with default settings, ours the evaluation's "
            "batched `generate_answers`. Tokens are generated tokens up to EOS.",
            "",
            "| generation | answers/s | tokens/s | peak MiB |",
            "| --- | --- | --- | --- |",
            f"| plain `generate` | {p['answers_per_s']:,.1f} | {p['tokens_per_s']:,.0f} ({p['min']:,.0f}-"
            f"{p['max']:,.0f}) | {p['peak_mib']:,.0f} |",
            f"| ours | {o['answers_per_s']:,.1f} | {o['tokens_per_s']:,.0f} ({o['min']:,.0f}-{o['max']:,.0f}) | "
            f"{o['peak_mib']:,.0f} |",
            f"| ours / plain | {o['answers_per_s'] / p['answers_per_s']:.2f} | {generation['ratio']:.2f} | "
            f"{generation['memory_ratio']:.2f} |",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    spec_path = Path(sys.argv[1])
    spec_path.with_suffix(".result.json").write_text(json.dumps(run_trial(json.loads(spec_path.read_text()))))
