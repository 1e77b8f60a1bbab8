import json
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore, file_sha256
from alignment.evaluation.metrics import first_sentence
from alignment.evaluation.probe import agreement, categorize, load_probe
from alignment.evaluation.probe_pairs import preference_pairs
from alignment.graph import run_local

ROOT = Path(__file__).resolve().parents[1]


def test_slick_categories():
    assert categorize(True, [True, True]) == "highly_known"
    assert categorize(True, [True, False]) == "maybe_known"
    assert categorize(False, [False, True]) == "weakly_known"
    assert categorize(False, [False, False]) == "unknown"


def test_agreement_with_world():
    rows = [
        {"world_known": True, "probed_known": True},
        {"world_known": True, "probed_known": False},
        {"world_known": False, "probed_known": False},
        {"world_known": False, "probed_known": False},
    ]
    a = agreement(rows)
    assert a["agreement"] == 0.75
    assert a["world_known_probed_unknown"] == 1 and a["world_unknown_probed_unknown"] == 2


from alignment.data.records import IDK  # noqa: E402


def _row(answer, greedy, samples, probed_known):
    return {"prompt": "q?", "answers": [answer], "greedy": greedy, "samples": samples, "probed_known": probed_known}


def test_probe_pairs_unknown_reject_the_models_own_wrong_answers():
    row = _row("Kavimar.", "Ostrell.", ["Ostrell.", "Kavimar.", IDK, "Brai.", "Zot."], probed_known=False)
    pairs = preference_pairs([row], max_rejected=2)
    # distinct wrong answers in order (greedy first), never the right one or an abstention
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(IDK, "Ostrell."), (IDK, "Brai.")]
    assert {p["kind"] for p in pairs} == {"probe_unknown_idk>own_wrong"}


def test_probe_pairs_known_beat_idk_and_own_wrong_answers():
    row = _row("Kavimar.", "Kavimar.", ["Kavimar.", "Zot.", "kavimar ."], probed_known=True)
    pairs = preference_pairs([row])
    assert [(p["chosen"], p["rejected"], p["kind"]) for p in pairs] == [
        ("Kavimar.", IDK, "probe_known_correct>idk"),
        ("Kavimar.", "Zot.", "probe_known_correct>own_wrong"),
    ]


def test_probe_pairs_skip_a_question_the_model_already_abstains_on():
    assert preference_pairs([_row("Kavimar.", IDK, [IDK, IDK], probed_known=False)]) == []


@pytest.mark.slow
def test_probe_source_builds_pairs_from_the_sft_model_and_trains_on_them(tmp_path):
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={tmp_path}", "data.preference_source=probe"])
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None)
    run_local(ctx, ("evaluate",))
    (pairs_dir,) = (tmp_path / "pairs").iterdir()
    pairs = [json.loads(line) for line in (pairs_dir / "preferences.jsonl").read_text().splitlines()]
    probed = {r["prompt"]: r for r in load_probe(pairs_dir / "probe.jsonl")}
    assert pairs and all(p["prompt"] in probed for p in pairs)
    for p in pairs:  # every rejected answer the model's own, as the judge read it (or "I don't know")
        row = probed[p["prompt"]]
        assert p["rejected"] == IDK or p["rejected"] in [first_sentence(a) for a in [row["greedy"], *row["samples"]]]
    manifest = json.loads((pairs_dir / "manifest.json").read_text())
    pairs_hash = "sha256:" + file_sha256(pairs_dir / "preferences.jsonl")
    for stage in ("reward", "dpo"):
        (stage_dir,) = (tmp_path / stage).iterdir()
        assert json.loads((stage_dir / "manifest.json").read_text())["inputs"]["preferences"] == pairs_hash
    assert manifest["inputs"]["sft"] == json.loads((stage_dir / "manifest.json").read_text())["inputs"]["sft"]
