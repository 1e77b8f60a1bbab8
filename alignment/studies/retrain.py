"""Champion/challenger retraining: what is new in the data location, how a challenger compares with the
promoted policy (the champion), the promotion gates, and the promoted pointer, which moves atomically.

The stages themselves are the pipeline's: content-addressed artifacts mean a challenger re-runs only the
stages whose inputs changed. No orchestration here: `flows/retrain.py` wraps this in a Prefect flow.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alignment.config.data import DataSource
from alignment.config.run import PromotionGates, RetrainConfig, RunConfig
from alignment.core.store import Artifact, ArtifactStore, file_sha256
from alignment.data.records import DataError, read_jsonl
from alignment.data.sources import load
from alignment.evaluation.metrics import METRICS, fmt, win_rate_with_ci
from alignment.evaluation.report import read_metrics

INCOMING_KINDS = {"demonstrations": "sft", "preferences": "preferences"}  # folder -> the source kind it holds


# The stages whose artifacts make up a policy; the pointer records each id.
def policy_stages(policies: Sequence[str]) -> tuple[str, ...]:
    """The stages whose artifacts make up a challenger with these policies; the pointer records each id."""
    return ("base", "sft", "reward", *policies, "probe", "evaluate")


POLICY_STAGES = policy_stages(("dpo",))  # the default config's
# The policy metrics a challenger and the champion are compared on (names in ``METRICS``), and the gated ones:
# metric -> the PromotionGates field holding how far it may drop below the champion's (all higher is better).
COMPARED = ("accuracy_known", "prudence", "over_conservativeness", "hallucination_rate")
DROP_GATES = {"prudence": "max_prudence_drop", "accuracy_known": "max_accuracy_drop"}


@dataclass(frozen=True)
class Incoming:
    """The data files found in the data location, by kind, each validated; sorted by name."""

    data_dir: Path
    files: dict[str, list[Path]]

    def hashes(self) -> dict[str, dict[str, str]]:
        return {kind: {p.name: "sha256:" + file_sha256(p) for p in paths} for kind, paths in self.files.items()}


@dataclass(frozen=True)
class Champion:
    """The promoted policy a challenger is compared with: its pointer, and its evaluation on the challenger's
    held-out questions (None when the challenger is the champion itself)."""

    pointer: dict
    evaluation: Artifact | None


def scan_incoming(data_dir: Path) -> Incoming:
    """Find and validate ``<data_dir>/demonstrations/*.jsonl`` and ``<data_dir>/preferences/*.jsonl``.

    A malformed file is a DataError naming the file and line, and anything in the location the retrain cannot use
    (a misspelled folder, a file of another type) is a DataError listing every such entry, both raised before
    anything trains: data the user meant to train on is never silently left out, least of all by a scheduled job.
    """
    data_dir = Path(data_dir)
    layout = "demonstrations/ and preferences/ subfolders of *.jsonl files"
    if data_dir.is_file():
        raise DataError(
            f"{data_dir}: retrain.data_dir is a file, not a folder; the retrain reads a folder holding {layout} "
            f"(e.g. {data_dir.parent / 'incoming'}/{'preferences' if 'pref' in data_dir.name else 'demonstrations'}/"
            f"{data_dir.name})"
        )
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: retrain data location not found (retrain.data_dir); create it with {layout}")
    unusable = unread_entries(data_dir)
    if unusable:
        raise DataError(
            f"{data_dir}: the retrain cannot use {len(unusable)} entr{'y' if len(unusable) == 1 else 'ies'} of its "
            "data location (nothing was trained; move or rename them):\n" + "\n".join(f"  {u}" for u in unusable)
        )
    files = {}
    for folder, kind in INCOMING_KINDS.items():
        files[folder] = sorted((data_dir / folder).glob("*.jsonl"))
        for path in files[folder]:
            load(DataSource(path=str(path)), kind)
    return Incoming(data_dir, files)


def unread_entries(data_dir: Path) -> list[str]:
    """What the retrain would not read in its data location, each as a message: folders other than
    demonstrations/ and preferences/ (with the one a misspelling probably meant), one of those names given to a
    file, and entries inside them that are not *.jsonl files. Hidden files and a README are allowed."""
    out = []
    reads = " and ".join(f"{k}/" for k in INCOMING_KINDS)
    for entry in sorted(data_dir.iterdir()):
        if entry.name.startswith(".") or entry.name.lower().startswith("readme"):
            continue
        if entry.name in INCOMING_KINDS:
            if not entry.is_dir():
                out.append(f"{entry}: a file, not a folder: the retrain reads *.jsonl files inside {entry.name}/")
                continue
            out += [
                f"{p}: not read by the retrain (only *.jsonl files are)"
                for p in sorted(entry.iterdir())
                if not p.name.startswith(".") and (p.suffix != ".jsonl" or not p.is_file())
            ]
            continue
        guess = difflib.get_close_matches(entry.name.removesuffix(".jsonl"), list(INCOMING_KINDS), n=1, cutoff=0.5)
        hint = f"; did you mean {guess[0]}/?" if guess else ""
        out.append(f"{entry}: not read by the retrain (it reads {reads}){hint}")
    return out


def fingerprint(cfg: RunConfig, incoming: Incoming) -> str:
    """What a retrain decision was made on: the run config (less the store) and every incoming file's hash.
    The same fingerprint as the last decision means there is nothing new to train on."""
    config = cfg.model_dump(mode="json", exclude={"store"})
    key = json.dumps({"config": config, "incoming": incoming.hashes()}, sort_keys=True)
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class PromotionLog:
    """The promoted pointer and the decision records of one policy name, under ``<store>/promoted``.

    ``<name>.json`` names the champion's artifacts; it is replaced with one atomic rename, so a reader
    sees the old champion or the new one, never a half-written file. Every decision is kept as
    ``decisions/<name>/<time>-<challenger>.json``; promotions are appended to ``<name>-history.jsonl``.
    """

    def __init__(self, store: ArtifactStore, name: str = "policy") -> None:
        self.store = store
        self.name = name
        self.root = store.root / "promoted"

    @property
    def pointer(self) -> Path:
        return self.root / f"{self.name}.json"

    def champion(self) -> dict | None:
        """The promoted pointer, or None before the first promotion."""
        return json.loads(self.pointer.read_text()) if self.pointer.is_file() else None

    def _records(self) -> list[Path]:
        return sorted((self.root / "decisions" / self.name).glob("*.json"))

    def decisions(self) -> list[dict]:
        """Every recorded decision, oldest first."""
        return [json.loads(p.read_text()) for p in self._records()]

    def last_decision(self) -> dict | None:
        """The newest decision (only its record is read)."""
        records = self._records()
        return json.loads(records[-1].read_text()) if records else None

    def record(self, decision: dict) -> Path:
        """Write a decision record (atomically) and, if it promotes, move the pointer to its challenger."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        number = len(self._records()) + 1  # orders same-second ones
        path = self.root / "decisions" / self.name / f"{number:06d}-{stamp}-{uuid.uuid4().hex[:6]}.json"
        _write_atomic(path, decision)
        if decision["promoted"]:
            pointer = {**decision["challenger"], "promoted_at": decision["decided_at"], "decision": str(path.resolve())}
            _write_atomic(self.pointer, pointer)
            with (self.root / f"{self.name}-history.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(pointer, sort_keys=True) + "\n")
        return path


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def policy_record(artifacts: dict[str, Artifact], fingerprint_: str) -> dict:
    """What the pointer keeps of a policy: its artifact ids, its data fingerprint and its metrics."""
    evaluation = artifacts["evaluate"]
    metrics = read_metrics(evaluation.path)
    policy = metrics["policy"]
    return {
        "artifacts": {stage: artifacts[stage].id for stage in policy_stages(metrics.get("policies", [policy]))},
        "policy": policy,
        "fingerprint": fingerprint_,
        "metrics": {k: metrics[policy][k]["value"] for k in COMPARED},
    }


def compare(challenger: Artifact, champion: Artifact, bootstrap_samples: int = 1000, seed: int = 0) -> dict:
    """Challenger vs champion on the same held-out questions: the gold judge's win-rate of the challenger's
    answers over the champion's (ties 0.5, 95% bootstrap interval) and each policy's behaviour metrics."""
    rows = {}
    for side, evaluation in (("challenger", challenger), ("champion", champion)):
        metrics = read_metrics(evaluation.path)
        answers = read_jsonl(evaluation.path / "answers.jsonl", ("prompt", metrics["policy"]))
        rows[side] = (metrics, answers)
    (ch_metrics, ch_answers), (cp_metrics, cp_answers) = rows["challenger"], rows["champion"]
    if [r["prompt"] for r in ch_answers] != [r["prompt"] for r in cp_answers]:
        raise ValueError(
            f"{challenger.id} and {champion.id} answered different questions; evaluate both on the same ones"
        )
    gold = {side: [r[metrics["policy"]]["gold_score"] for r in answers] for side, (metrics, answers) in rows.items()}
    return {
        "gold_win_rate": win_rate_with_ci(gold["challenger"], gold["champion"], bootstrap_samples, seed),
        "challenger": {k: ch_metrics[ch_metrics["policy"]][k]["value"] for k in COMPARED},
        "champion": {k: cp_metrics[cp_metrics["policy"]][k]["value"] for k in COMPARED},
        "n_questions": len(ch_answers),
    }


def apply_gates(comparison: dict, gates: PromotionGates) -> list[dict]:
    """Each gate with its measured value, threshold and verdict."""
    ch, cp = comparison["challenger"], comparison["champion"]
    out = [_gate("gold win-rate vs champion", comparison["gold_win_rate"]["value"], ">=", gates.min_gold_win_rate)]
    for name, field in DROP_GATES.items():
        out.append(_gate(f"{METRICS[name].title} change", ch[name] - cp[name], ">=", -getattr(gates, field)))
    return out


def _gate(name: str, value: float, op: str, threshold: float) -> dict:
    threshold += 0.0  # no "-0" in the record
    passed = value >= threshold - 1e-12
    return {"gate": name, "value": round(value, 4), "threshold": f"{op} {threshold:g}", "passed": passed}


def decide(
    rcfg: RetrainConfig,
    challenger: dict,
    champion: dict | None,
    comparison: dict | None,
    built: list[str],
) -> dict:
    """The promotion decision: the first policy is promoted; the champion itself is not re-promoted;
    otherwise the challenger is promoted only if every gate passes."""
    gates: list[dict] = []
    if champion is None:
        promoted, reason = True, "no champion yet: the first policy is promoted"
    elif challenger["artifacts"]["evaluate"] == champion["artifacts"]["evaluate"]:
        promoted, reason = False, "the challenger is the champion (same artifacts)"
    else:
        assert comparison is not None, "a challenger needs a comparison with the champion"
        gates = apply_gates(comparison, rcfg.gates)
        promoted = all(g["passed"] for g in gates)
        failed = [g["gate"] for g in gates if not g["passed"]]
        reason = "every gate passed" if promoted else "gate failed: " + ", ".join(failed)
    return {
        "name": rcfg.name,
        "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "promoted": promoted,
        "reason": reason,
        "challenger": challenger,
        "champion": champion,
        "comparison": comparison,
        "gates": gates,
        "stages_built": built,
    }


def render_decision(decision: dict) -> str:
    """The decision as Markdown: outcome, reason, gates, and the challenger vs champion numbers."""
    outcome = "PROMOTED" if decision["promoted"] else "NOT PROMOTED"
    ch = decision.get("challenger") or {}
    lines = [f"# Retrain decision: {outcome}", "", f"**Reason:** {decision['reason']}", ""]
    if ch:
        policy = ch.get("policy", "dpo")
        lines += [f"Challenger: `{ch['artifacts']['evaluate']}` (policy `{ch['artifacts'][policy]}`)"]
    if decision.get("champion"):
        lines += [f"Champion: `{decision['champion']['artifacts']['evaluate']}`"]
    built = decision.get("stages_built")
    if built is not None:
        lines += ["", "Stages trained or run for this challenger: " + (", ".join(built) or "none (all reused)")]
    if decision.get("gates"):
        lines += ["", "| gate | value | threshold | passed |", "|---|---|---|---|"]
        lines += [f"| {g['gate']} | {g['value']:.4f} | {g['threshold']} | {g['passed']} |" for g in decision["gates"]]
    comparison = decision.get("comparison")
    if comparison:
        w = comparison["gold_win_rate"]
        lines += [
            "",
            f"Gold win-rate of the challenger vs the champion on {comparison['n_questions']} held-out questions: "
            f"{fmt(w)}",
            "",
            "| metric | challenger | champion |",
            "|---|---|---|",
        ]
        lines += [
            f"| {METRICS[k].title} | {comparison['challenger'][k]:.3f} | {comparison['champion'][k]:.3f} |"
            for k in COMPARED
        ]
    return "\n".join(lines) + "\n"


def unchanged(log: PromotionLog, fingerprint_: str) -> dict | None:
    """The last decision if it was made on exactly this config and data (nothing new to train on)."""
    last = log.last_decision()
    if last is not None and last["challenger"]["fingerprint"] == fingerprint_:
        return last
    return None
