"""Same config and seed, fresh store: identical metrics on CPU."""

import json
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.graph import run_local

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

ROOT = Path(__file__).resolve().parents[1]


def run_micro(root: Path) -> dict:
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={root}"])
    evaluation = run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), ("evaluate",))[
        "evaluate"
    ]
    return json.loads((evaluation.path / "metrics.json").read_text())


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    first = run_micro(tmp_path / "a")
    second = run_micro(tmp_path / "b")
    assert first == second
