"""Knowledge probe (after SliCK, Gekhman et al. 2024): label each question known / unknown by how
often a model answers it right, greedy and sampled.

Categories, with one greedy answer and n samples at a temperature:
highly_known (greedy right and every sample right), maybe_known (greedy right, some sample wrong),
weakly_known (greedy wrong, some sample right), unknown (never right). "Known" = not unknown.
Works on any HF causal LM with a chat template and any QA set with gold answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from alignment.config import ProbeConfig
from alignment.generation import generate_answers
from alignment.metrics import CORRECT, WRONG, judge
from alignment.modeling import load_causal_lm, load_tokenizer
from alignment.records import write_jsonl

CATEGORIES = ("highly_known", "maybe_known", "weakly_known", "unknown")


def categorize(greedy_correct: bool, samples_correct: Sequence[bool]) -> str:
    """The SliCK-style category of one question."""
    if greedy_correct:
        return "highly_known" if all(samples_correct) else "maybe_known"
    return "weakly_known" if any(samples_correct) else "unknown"


def probe(model, tok, questions: list[dict], cfg: ProbeConfig, idk: str, batch_size: int = 256) -> list[dict]:
    """Probe every question; returns one row per question with its category and ``probed_known``."""
    prompts = [q["prompt"] for q in questions]
    greedy = generate_answers(model, tok, prompts, cfg.max_new_tokens, batch_size)
    samples = [
        generate_answers(model, tok, prompts, cfg.max_new_tokens, batch_size, cfg.temperature, 1.0, seed=cfg.seed + k)
        for k in range(cfg.samples)
    ]
    rows = []
    for i, q in enumerate(questions):
        g_ok = judge(greedy[i], q["answer"], idk) == CORRECT
        s_ok = [judge(s[i], q["answer"], idk) == CORRECT for s in samples]
        category = categorize(g_ok, s_ok)
        rows.append(
            {
                "prompt": q["prompt"],
                "answer": q["answer"],
                "world_known": q.get("known"),
                "greedy": greedy[i],
                "samples": [s[i] for s in samples],
                "samples_correct": sum(s_ok),
                "category": category,
                "probed_known": category != "unknown",
            }
        )
    return rows


def agreement(rows: list[dict]) -> dict:
    """How far the probe agrees with how the world was built (known = in the pretraining corpus)."""
    pairs = Counter((r["world_known"], r["probed_known"]) for r in rows if r["world_known"] is not None)
    total = sum(pairs.values())
    return {
        "agreement": (pairs[(True, True)] + pairs[(False, False)]) / total if total else float("nan"),
        "world_known_probed_known": pairs[(True, True)],
        "world_known_probed_unknown": pairs[(True, False)],
        "world_unknown_probed_known": pairs[(False, True)],
        "world_unknown_probed_unknown": pairs[(False, False)],
    }


def run_probe(
    cfg: ProbeConfig,
    base: Path | str,
    adapters: Sequence[Path],
    questions: list[dict],
    out_dir: Path,
    device: str = "cpu",
    idk: str = "I don't know.",
    progress: Callable[[str], None] = print,
) -> dict:
    """Probe a model (base + adapters) on the questions; writes ``probe.jsonl``; returns a summary."""
    return summarize(_probe_to_file(cfg, base, adapters, questions, out_dir, device, idk, progress))


def _probe_to_file(cfg, base, adapters, questions, out_dir, device, idk, progress) -> list[dict]:
    tok = load_tokenizer(base)
    model = load_causal_lm(base, adapters, device)
    progress(f"probe: {len(questions)} questions, greedy + {cfg.samples} samples at T={cfg.temperature}")
    rows = probe(model, tok, questions, cfg, idk)
    write_jsonl(out_dir / "probe.jsonl", rows)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Question count, SliCK category counts and agreement with the world of a probe's rows."""
    counts = Counter(r["category"] for r in rows)
    return {"questions": len(rows), "categories": {c: counts[c] for c in CATEGORIES}, **agreement(rows)}


def preference_pairs(rows: list[dict], idk: str, max_rejected: int = 2) -> list[dict]:
    """Model-aware preference pairs from probe rows (on-policy: the rejected answers are the model's own).

    Probed unknown: "I don't know" beats each distinct wrong answer the model gave (greedy first, then
    samples). Probed known: the gold answer beats "I don't know" and each distinct wrong answer it gave.
    Answers judged correct or abstaining are never rejected against the gold answer.
    """
    pairs = []
    for r in rows:
        wrong: list[str] = []
        for text in [r["greedy"], *r.get("samples", [])]:
            if text and judge(text, r["answer"], idk) == WRONG and text not in wrong:
                wrong.append(text)
        wrong = wrong[:max_rejected]
        if r["probed_known"]:
            pairs.append(
                {"prompt": r["prompt"], "chosen": r["answer"], "rejected": idk, "kind": "probe_known_correct>idk"}
            )
            kind, chosen = "probe_known_correct>own_wrong", r["answer"]
        else:
            kind, chosen = "probe_unknown_idk>own_wrong", idk
        pairs += [{"prompt": r["prompt"], "chosen": chosen, "rejected": w, "kind": kind} for w in wrong]
    return pairs


def build_probe_pairs(
    cfg: ProbeConfig,
    base: Path | str,
    adapters: Sequence[Path],
    questions: list[dict],
    out_dir: Path,
    device: str = "cpu",
    idk: str = "I don't know.",
    max_rejected: int = 2,
    progress: Callable[[str], None] = print,
) -> dict:
    """Probe the model on the preference questions and write ``preferences.jsonl`` built from it."""
    rows = _probe_to_file(cfg, base, adapters, questions, out_dir, device, idk, progress)
    pairs = preference_pairs(rows, idk, max_rejected)
    if not pairs:
        raise ValueError("the probe produced no preference pairs: the model made no wrong answer to reject")
    write_jsonl(out_dir / "preferences.jsonl", pairs, sort_keys=True)
    kinds = Counter(p["kind"] for p in pairs)
    progress(f"probe pairs: {len(pairs)} pairs {dict(kinds)}")
    return {"probe": summarize(rows), "pairs": len(pairs), "pairs_by_kind": dict(sorted(kinds.items()))}


def load_probe(path: Path) -> list[dict]:
    """The rows a probe artifact wrote."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
