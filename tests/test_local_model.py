"""The hub-model path, tested offline: a locally saved HF causal-LM directory as model.name_or_path."""

import json
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.data.tokenizer import train_tokenizer
from alignment.data.world import tokenizer_texts, world_stage
from alignment.graph import run_local
from alignment.models.tiny_base import build_model

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_runs_on_a_local_model_directory(tmp_path):
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={tmp_path / 'runs'}"])
    world = world_stage(cfg.world, StageContext(cfg, ArtifactStore(cfg.store.root)))
    tok = train_tokenizer(tokenizer_texts(world.path))
    model_dir = tmp_path / "my-model"
    build_model(cfg.model.tiny, tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    cfg = load_config(
        ROOT / "configs/micro.yaml", [f"store.root={tmp_path / 'runs'}", f"model.name_or_path={model_dir}"]
    )
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None)
    evaluation = run_local(ctx, ("evaluate",))["evaluate"]
    metrics = json.loads((evaluation.path / "metrics.json").read_text())
    assert set(metrics) >= {"base", "sft", "dpo", "win_rate_vs_sft"}
    base = ArtifactStore(cfg.store.root).get(evaluation.manifest["inputs"]["base"])
    assert base.manifest["source"] == str(model_dir)
    assert not (base.path / "model").exists()  # the local model is used in place, not copied
