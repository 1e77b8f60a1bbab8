"""Champion/challenger retraining: the gates, the atomic pointer, and the flow driven on the micro config
(no new data: nothing trained or promoted; a new preference file: retrained from the reward model on)."""

import json
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.config.run import PromotionGates, RetrainConfig
from alignment.core.lineage import lineage, render_text
from alignment.core.store import ArtifactStore
from alignment.data.records import DataError, read_jsonl
from alignment.studies import retrain as lib

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

ROOT = Path(__file__).resolve().parents[1]


def _comparison(win: float, prudence: tuple[float, float], accuracy: tuple[float, float]) -> dict:
    side = lambda p, a: {"prudence": p, "accuracy_known": a, "over_conservativeness": 0.0, "hallucination_rate": 0.0}  # noqa: E731
    return {
        "gold_win_rate": {"value": win, "ci95": [win - 0.1, win + 0.1]},
        "challenger": side(prudence[0], accuracy[0]),
        "champion": side(prudence[1], accuracy[1]),
        "n_questions": 10,
    }


def _policy(evaluation: str) -> dict:
    return {"artifacts": {s: f"{s}-{evaluation}" for s in lib.POLICY_STAGES}, "fingerprint": "sha256:x", "metrics": {}}


@pytest.mark.parametrize(
    ("win", "prudence", "accuracy", "promoted", "failed"),
    [
        (0.6, (0.9, 0.8), (0.7, 0.7), True, []),
        (0.5, (0.8, 0.8), (0.66, 0.7), True, []),  # ties the champion, accuracy within 0.05
        (0.45, (0.9, 0.8), (0.7, 0.7), False, ["gold win-rate vs champion"]),
        (0.7, (0.7, 0.8), (0.7, 0.7), False, ["prudence change"]),
        (0.7, (0.8, 0.8), (0.6, 0.7), False, ["accuracy (known) change"]),
    ],
)
def test_gates_decide_promotion(win, prudence, accuracy, promoted, failed):
    rcfg = RetrainConfig()
    decision = lib.decide(rcfg, _policy("b"), _policy("a"), _comparison(win, prudence, accuracy), ["reward"])
    assert decision["promoted"] is promoted
    assert [g["gate"] for g in decision["gates"] if not g["passed"]] == failed
    assert ("PROMOTED" if promoted else "NOT PROMOTED") in lib.render_decision(decision)


def test_gates_are_configurable():
    strict = RetrainConfig(gates=PromotionGates(min_gold_win_rate=0.7))
    assert not lib.decide(strict, _policy("b"), _policy("a"), _comparison(0.6, (1, 1), (1, 1)), [])["promoted"]


def test_first_policy_is_promoted_and_the_champion_is_not_repromoted():
    assert lib.decide(RetrainConfig(), _policy("a"), None, None, [])["promoted"]
    same = lib.decide(RetrainConfig(), _policy("a"), _policy("a"), None, [])
    assert not same["promoted"] and "is the champion" in same["reason"]


def test_pointer_moves_only_on_promotion(tmp_path):
    log = lib.PromotionLog(ArtifactStore(tmp_path), "policy")
    assert log.champion() is None
    log.record(lib.decide(RetrainConfig(), _policy("a"), None, None, []))
    assert log.champion()["artifacts"]["evaluate"] == "evaluate-a"
    rejected = lib.decide(RetrainConfig(), _policy("b"), log.champion(), _comparison(0.2, (1, 1), (1, 1)), [])
    log.record(rejected)
    assert log.champion()["artifacts"]["evaluate"] == "evaluate-a"  # unchanged
    assert [d["promoted"] for d in log.decisions()] == [True, False]
    assert not list((tmp_path / "promoted").rglob(".*.tmp"))  # no half-written files left behind
    assert len(read_jsonl(tmp_path / "promoted" / "policy-history.jsonl", ("promoted_at",))) == 1


def test_scan_incoming_validates_files_and_fingerprints_them(tmp_path):
    with pytest.raises(DataError, match="retrain data location not found"):
        lib.scan_incoming(tmp_path / "missing")
    (tmp_path / "preferences").mkdir()
    cfg = load_config(ROOT / "configs/micro.yaml")
    empty = lib.fingerprint(cfg, lib.scan_incoming(tmp_path))
    (tmp_path / "preferences" / "a.jsonl").write_text('{"prompt": "q", "chosen": "x", "rejected": "y"}\n')
    one = lib.scan_incoming(tmp_path)
    assert one.files["preferences"] == [tmp_path / "preferences" / "a.jsonl"] and one.files["demonstrations"] == []
    assert lib.fingerprint(cfg, one) != empty
    (tmp_path / "preferences" / "b.jsonl").write_text('{"prompt": "q", "chosen": "x"}\n')
    with pytest.raises(DataError, match=r"b\.jsonl: row 1 \(line 1\): column 'rejected' is missing"):
        lib.scan_incoming(tmp_path)


def _manifests(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in root.rglob("manifest.json")}


def _new_pairs(world_preferences: Path, out: Path, start: int, n: int) -> None:
    rows = read_jsonl(world_preferences, ("prompt", "chosen", "rejected"))[start : start + n]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_retrain_flow_trains_only_on_new_data_and_records_decisions(harness, tmp_path):
    from flows.retrain import retrain_flow

    runs, incoming = tmp_path / "runs", tmp_path / "incoming"
    (incoming / "preferences").mkdir(parents=True)
    (incoming / "demonstrations").mkdir()
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={runs}"])
    rcfg = RetrainConfig(data_dir=incoming)
    log = lib.PromotionLog(ArtifactStore(runs), "policy")

    first = retrain_flow(cfg, rcfg)  # no champion yet: everything trains, the first policy is promoted
    assert first["promoted"] and set(first["stages_built"]) == set(lib.POLICY_STAGES)
    champion = log.champion()
    assert champion["artifacts"]["evaluate"] == first["challenger"]["artifacts"]["evaluate"]

    before = _manifests(runs)
    idle = retrain_flow(cfg, rcfg)  # nothing new
    assert not idle["promoted"] and "no new data" in idle["reason"] and idle["stages_built"] == []
    assert _manifests(runs) == before  # nothing trained, nothing evaluated
    assert log.champion() == champion and len(log.decisions()) == 1

    world_prefs = next((runs / "world").glob("*/preferences.jsonl"))
    _new_pairs(world_prefs, incoming / "preferences" / "2026-11-01.jsonl", 0, 12)
    strict = RetrainConfig(data_dir=incoming, gates=PromotionGates(min_gold_win_rate=1.0))
    rejected = retrain_flow(cfg, strict)  # a new preference file: SFT is kept, reward model and DPO retrain
    assert rejected["stages_built"] == ["reward", "dpo", "evaluate"]
    assert rejected["challenger"]["artifacts"]["sft"] == champion["artifacts"]["sft"]
    assert rejected["comparison"]["n_questions"] == 18
    win = rejected["comparison"]["gold_win_rate"]["value"]
    assert win < 1.0  # the micro policies differ on some question: a win-rate of 1.0 is out of reach
    assert [(g["gate"], g["passed"]) for g in rejected["gates"]][0] == ("gold win-rate vs champion", False)
    assert not rejected["promoted"] and rejected["reason"].startswith("gate failed: gold win-rate vs champion")
    assert json.loads(Path(rejected["record"]).read_text())["reason"] == rejected["reason"]
    assert log.champion() == champion  # the pointer did not move

    _new_pairs(world_prefs, incoming / "preferences" / "2026-11-08.jsonl", 12, 12)
    lax = RetrainConfig(
        data_dir=incoming, gates=PromotionGates(min_gold_win_rate=0, max_prudence_drop=1, max_accuracy_drop=1)
    )
    promoted = retrain_flow(cfg, lax)
    assert promoted["promoted"] and promoted["stages_built"] == ["reward", "dpo", "evaluate"]
    assert log.champion()["artifacts"] == promoted["challenger"]["artifacts"]
    assert [d["promoted"] for d in log.decisions()] == [True, False, True]
    tree = render_text(lineage(ArtifactStore(runs), promoted["challenger"]["artifacts"]["dpo"]), metrics=False)
    assert "built by: dataset-" in tree and "2026-11-01.jsonl" in tree and "2026-11-08.jsonl" in tree

    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"key": {"any_": ["retrain-decision"]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"}
    found = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30).raise_for_status().json()
    texts = [a["data"] for a in reversed(found)]  # oldest first
    assert len(texts) == 4 and "nothing to do" in texts[1]
    assert "# Retrain decision: NOT PROMOTED" in texts[2]
    assert "# Retrain decision: PROMOTED" in texts[3] and "| gate | value | threshold | passed |" in texts[3]

    (incoming / "demonstrations" / "bad.jsonl").write_text('{"prompt": "q"}\n')
    before = _manifests(runs)
    with pytest.raises(DataError, match=r"bad\.jsonl: row 1 \(line 1\): column 'completion' is missing"):
        retrain_flow(cfg, lax)
    assert _manifests(runs) == before


def test_what_the_retrain_cannot_use_fails_with_the_list(tmp_path):
    """A misspelled folder, a file of another type, a kind's name given to a file: each would be data never
    trained on behind an exit 0. The retrain fails before any work and lists every entry; a README is fine."""
    (tmp_path / "demonstration").mkdir()  # misspelled: silently skipped before
    (tmp_path / "demonstration" / "new.jsonl").write_text('{"prompt": "q", "completion": "a"}\n')
    (tmp_path / "preferences").mkdir()
    (tmp_path / "preferences" / "pairs.json").write_text("[]")
    (tmp_path / "README.md").write_text("where new data lands\n")
    with pytest.raises(DataError) as info:
        lib.scan_incoming(tmp_path)
    assert str(info.value).splitlines() == [
        f"{tmp_path}: the retrain cannot use 2 entries of its data location (nothing was trained; move or rename "
        "them):",
        f"  {tmp_path / 'demonstration'}: not read by the retrain (it reads demonstrations/ and preferences/); "
        "did you mean demonstrations/?",
        f"  {tmp_path / 'preferences' / 'pairs.json'}: not read by the retrain (only *.jsonl files are)",
    ]
    (tmp_path / "preferences" / "pairs.json").unlink()
    (tmp_path / "preferences" / "pairs.jsonl").write_text('{"prompt": "q", "chosen": "x", "rejected": "y"}\n')
    (tmp_path / "demonstration" / "new.jsonl").rename(tmp_path / "demonstrations")  # a file where a folder goes
    (tmp_path / "demonstration").rmdir()
    with pytest.raises(DataError, match=r"demonstrations: a file, not a folder: the retrain reads \*\.jsonl files"):
        lib.scan_incoming(tmp_path)
    (tmp_path / "demonstrations").unlink()
    assert lib.scan_incoming(tmp_path).files == {
        "demonstrations": [],
        "preferences": [tmp_path / "preferences" / "pairs.jsonl"],
    }
    with pytest.raises(DataError, match=r"pairs\.jsonl: retrain\.data_dir is a file, not a folder; .* \(e\.g\. "):
        lib.scan_incoming(tmp_path / "preferences" / "pairs.jsonl")  # the file itself given as the location


def _merge(tmp_path, new_file, monkeypatch=None, meanwhile=None):
    """run_data.merge of one new demonstrations file; ``meanwhile(path)`` runs after its content id is taken."""
    from alignment.config.data import DataSource
    from alignment.core.context import StageContext
    from alignment.data.run_data import RunData, merge

    root = Path(__file__).resolve().parents[1] / "data"
    cfg = load_config(None, [f"store.root={tmp_path / 'runs'}"])
    incoming = {"demonstrations": [new_file]}
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None, incoming=incoming)
    if meanwhile:
        original = StageContext.materialize

        def late(self, *args, **kwargs):
            meanwhile(new_file)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(StageContext, "materialize", late)
    data = RunData(
        sft=DataSource(path=str(root / "demonstrations.jsonl")),
        preferences=None,
        questions=DataSource(path=str(root / "eval_questions.jsonl")),
        reference=DataSource(path=str(root / "reference.txt")),
    )
    return merge(ctx, data, "demonstrations")


def test_the_retrain_trains_on_a_snapshot_of_its_new_files(tmp_path):
    new = tmp_path / "new.jsonl"
    new.write_text('{"prompt": "Who?", "completion": "Me."}\n')
    merged = _merge(tmp_path, new)
    dataset = Path(merged.sft.path).parent
    assert (dataset / "incoming" / "1-new.jsonl").read_bytes() == new.read_bytes()
    assert len(read_jsonl(Path(merged.sft.path))) == 361  # 360 of the world's + 1


@pytest.mark.parametrize(
    ("meanwhile", "message"),
    [
        (lambda p: p.open("a").write('{"prompt": "late", "completion": "row"}\n'), "changed while the retrain ran"),
        (lambda p: p.unlink(), "vanished while the retrain ran; nothing was trained on it"),
    ],
)
def test_a_new_file_that_changes_or_vanishes_mid_run_is_a_clear_error(tmp_path, monkeypatch, meanwhile, message):
    new = tmp_path / "new.jsonl"
    new.write_text('{"prompt": "Who?", "completion": "Me."}\n')
    with pytest.raises(DataError, match=f"^{new}: {message}"):
        _merge(tmp_path, new, monkeypatch, meanwhile)
    assert not (tmp_path / "runs" / "dataset").exists()
