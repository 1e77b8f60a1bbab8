"""Ours vs plain TRL, side by side in one run: tokens/s, peak memory, MFU and their ratio per training method,
and the evaluation's generation throughput against plain ``generate``.

For each method (SFT, reward model, and every policy of ``alignment.config.policies``) the same model, data, batch
size and number of steps train twice, each in its own process (so peak memory is that trial's alone): once with
plain TRL (the method's config class with its defaults, a PEFT LoRA of the same rank on all linear layers), once the
way the pipeline trains (``alignment.methods.sft.train_sft`` etc., with the pipeline's default section). A Trainer
callback times every optimizer step; the first ``warmup`` steps are left out. Tokens are each step's non-padding
input tokens as its trainer counts them (``state.num_input_tokens_seen``: a pair's two sequences, whole even where
ours computes their shared prompt once; for KTO, each row's own prompt and completion, its mismatched KL completion
not counted; for an online policy, each sampled completion with its prompt), so the two variants count alike even
where their batches differ (ours' reward model holds a share of the pairs out). Both train with the same seed.
Fixed costs (the reward model's held-out evaluation, DPO's stored-reference pass) are reported beside the steps;
RLOO's over-optimisation curve is read off its rollouts, inside the steps.

Generation answers the world's held-out questions greedily: ours is the evaluation's batched, left-padded,
KV-cached ``generate_answers``; plain is ``model.generate`` called per question with default settings.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from alignment.config.policies import POLICIES, POLICY_NAMES, policy
from alignment.studies.bench_trials import (
    GENERATION_PASSES,
    METHODS,
    PRESETS,
    build_model,
    build_reward_model,
    workload_rows,
)

VARIANTS = ("plain", "ours")
ONLINE = tuple(p.name for p in POLICIES if p.online)  # they count their own tokens (prompts and samples), no MFU
# Dense bf16 peak of the GPUs we know (spec sheets, TFLOP/s), for MFU; another GPU: --peak-tflops.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


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
    if peak is None or method in ONLINE or not parameters:
        return None
    return (2 if method == "generation" else 6) * parameters * tokens_per_s / peak


def generation_flops(trial: dict, warmup: int, answers: int) -> dict[str, float]:
    """Greedy decoding's answers/s and achieved FLOP/s (2 per parameter per prompt and generated token: a lower
    bound, attention and padding not counted) over the timed passes, and that as a share of the same process's
    measured matrix-multiply throughput."""
    seconds = statistics.median(trial["seconds"][warmup:])
    tokens = statistics.median([p + g for p, g in zip(trial["prompt_tokens"], trial["tokens"], strict=True)][warmup:])
    achieved = 2 * trial["parameters"] * tokens / seconds
    return {
        "answers_per_s": answers / seconds,
        "achieved_flops": achieved,
        "matmul_flops": trial["matmul_flops"],
        "matmul_share": achieved / trial["matmul_flops"],
    }


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
        if any(method in POLICY_NAMES and "reward" in policy(method).inputs for method in methods):
            build_reward_model(model_dir, work)
        rows_table = []
        for method in methods:
            rows = workload_rows(work / "data", method, preset.long_rows, preset.max_length)
            passes = min(steps, GENERATION_PASSES) if method == "generation" else steps
            method_warmup = min(1, passes - 1) if method == "generation" else warmup
            result: dict[str, Any] = {"method": method}

            spec = {"method": method, "model_dir": str(model_dir), "data": str(work / "data"), "work": str(work)}
            spec |= {"steps": passes, "batch_size": preset.batch_size, "bf16": preset.bf16}
            spec |= {"max_length": preset.max_length, "long_rows": preset.long_rows}
            spec |= {"completion_length": preset.completion_length, "questions": preset.questions}
            spec |= {"overrides": overrides or {}}

            for variant in VARIANTS:
                trial = _subprocess_trial(spec, variant, work)
                tokens = trial["tokens"]  # each step's tokens as its trainer (or the generation trial) counted them
                if not any(tokens):
                    raise RuntimeError(f"bench trial {method}/{variant}: its trainer counted no tokens")
                summary = summarize(trial["seconds"], tokens, method_warmup)
                peak = peak_flops(trial["device_name"], peak_tflops)
                result[variant] = summary | {
                    "peak_mib": trial["peak_mib"],
                    "wall_seconds": trial["wall_seconds"],
                    "steps_timed": len(trial["seconds"]) - method_warmup,
                    "mfu": mfu(method, summary["tokens_per_s"], trial["parameters"], peak),
                    "device": trial["device_name"],
                }
                result[variant]["fixed_seconds"] = trial["fixed_seconds"]
                if method == "generation":
                    result[variant] |= generation_flops(trial, method_warmup, min(len(rows), preset.questions))
            result["ratio"] = result["ours"]["tokens_per_s"] / result["plain"]["tokens_per_s"]
            result["memory_ratio"] = result["ours"]["peak_mib"] / result["plain"]["peak_mib"]
            if method not in (*ONLINE, "generation"):  # how much of one pass over the data the trial trains on
                result["epoch_share"] = passes * preset.batch_size / len(rows)
            if method == "dpo":  # the pipeline stores the reference: its pass over every pair, a fixed cost
                result["reference_pass_seconds"] = _subprocess_trial(spec, "reference", work)["fixed_seconds"]
                result["pairs"] = len(rows)
            rows_table.append(result)
    table = {"preset": preset_name, "description": preset.description, "batch_size": preset.batch_size}
    table |= {"shape": preset.shape, "max_length": preset.max_length, "completion_length": preset.completion_length}
    table |= {"steps": steps, "warmup": warmup, "questions": preset.questions, "overrides": overrides or {}}
    table["methods"] = rows_table
    (out / "bench.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "bench.md").write_text(render(table))
    return table


def _subprocess_trial(spec: dict, variant: str, work: Path) -> dict:
    """One trial of ``spec``'s method in its own process: ``variant`` is plain, ours, or DPO's reference pass."""
    spec = spec | {"variant": variant, "out": str(work / f"{spec['method']}-{variant}")}
    path = work / f"{spec['method']}-{variant}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "alignment.studies.bench_trials", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench trial {spec['method']}/{spec['variant']} failed:\n{done.stderr[-3000:]}")
    return json.loads(path.with_suffix(".result.json").read_text())


def _mfu(trial: dict) -> str:
    return "-" if trial.get("mfu") is None else f"{100 * trial['mfu']:.1f}%"


def _fixed(trial: dict) -> str:
    return f"{trial['fixed_seconds']:.1f}" if trial.get("fixed_seconds") else "-"


def render(table: dict) -> str:
    """The table as Markdown: tokens/s (median, min-max over timed steps), peak memory, MFU, the ratios, each
    trial's whole time and fixed costs, and generation's share of the machine's matrix-multiply throughput."""
    lines = [
        f"# Bench: ours vs plain TRL ({table['preset']}: {table['description']})",
        "",
        f"Batch {table['batch_size']}, sequences up to {table['max_length']} tokens, {table['steps']} steps, the "
        f"first {table['warmup']} left out; model shape {table['shape']}; tokens are "
        "non-padding tokens. Peak memory: GPU allocator peak, or the process's peak RSS on CPU. RLOO and GRPO sample "
        f"completions of up to {table['completion_length']} tokens; their tokens are prompt and completion tokens. "
        "MFU: 6 FLOPs per parameter per trained token (a lower bound), on a GPU whose peak is known. Trial s: the "
        "whole trial (loading the model, preparing the data, every step, fixed costs included). Fixed s: the part of "
        "ours' trial outside the steps' own work (the reward model's held-out evaluation; RLOO's over-optimisation "
        "curve is read off its rollouts, inside the steps). Trial / epoch: the share of one "
        "pass over the method's data the trial trains on."
        + (f" Ours with {table['overrides']}." if table.get("overrides") else ""),
        "",
        "| method | plain TRL tokens/s | ours tokens/s | ours / plain | plain peak MiB | ours peak MiB | memory ours / "
        "plain | plain MFU | ours MFU | plain trial s | ours trial s | ours fixed s | trial / epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    generation = None
    notes = []
    for r in table["methods"]:
        if r["method"] == "generation":
            generation = r
            continue
        p, o = r["plain"], r["ours"]
        share = f"{r['epoch_share']:.0%}" if "epoch_share" in r else "-"
        lines.append(
            f"| {r['method']} | {p['tokens_per_s']:,.0f} ({p['min']:,.0f}-{p['max']:,.0f}) | "
            f"{o['tokens_per_s']:,.0f} ({o['min']:,.0f}-{o['max']:,.0f}) | {r['ratio']:.2f} | "
            f"{p['peak_mib']:,.0f} | {o['peak_mib']:,.0f} | {r['memory_ratio']:.2f} | {_mfu(p)} | {_mfu(o)} | "
            f"{p['wall_seconds']:.1f} | {o['wall_seconds']:.1f} | {_fixed(o)} | {share} |"
        )
        if "reference_pass_seconds" in r:
            notes.append(
                f"DPO: ours computes each pair's reference log-probabilities when a step first draws it (plain TRL: "
                f"in every step). The pipeline instead stores them as the `reference` artifact, reused by every DPO "
                f"run on the same pairs: building it for all {r['pairs']} pairs (loading the model, tokenizing, one "
                f"pass) took {r['reference_pass_seconds']:.1f} s here, in its own process."
            )
    if notes:
        lines += ["", *notes]
    if generation:
        p, o = generation["plain"], generation["ours"]
        lines += [
            "",
            f"Generation: greedy answers of up to {table['completion_length']} tokens to "
            f"{table.get('questions', 'the')} held-out questions, {generation['plain']['steps_timed']} timed "
            "passes; plain is one `model.generate` per question with default settings, ours the evaluation's "
            "batched `generate_answers`. Tokens are generated tokens up to EOS. Achieved: 2 FLOPs per parameter per "
            "prompt and generated token (attention and padding not counted); matmul: the same process's best square "
            "matrix product in the model's dtype, the ceiling.",
            "",
            "| generation | answers/s | tokens/s | peak MiB | achieved GFLOP/s | matmul GFLOP/s | share of matmul |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, t in (("plain `generate`", p), ("ours", o)):
            lines.append(
                f"| {name} | {t['answers_per_s']:,.1f} | {t['tokens_per_s']:,.0f} ({t['min']:,.0f}-{t['max']:,.0f}) | "
                f"{t['peak_mib']:,.0f} | {t['achieved_flops'] / 1e9:,.1f} | {t['matmul_flops'] / 1e9:,.1f} | "
                f"{t['matmul_share']:.1%} |"
            )
        lines.append(
            f"| ours / plain | {o['answers_per_s'] / p['answers_per_s']:.2f} | {generation['ratio']:.2f} | "
            f"{generation['memory_ratio']:.2f} | {o['achieved_flops'] / p['achieved_flops']:.2f} | | |"
        )
    return "\n".join(lines) + "\n"
