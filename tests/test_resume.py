"""A training stage killed mid-run resumes from its last checkpoint when run again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.core.checkpoints import checkpoint_step
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.graph import run_local

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

ROOT = Path(__file__).resolve().parents[1]
HOLD = ROOT / "tests/hold_at_checkpoint"  # on PYTHONPATH, training holds after its first checkpoint until killed
SCRIPT = """
import sys
from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.graph import run_local
from alignment.core.store import ArtifactStore

cfg = load_config(sys.argv[2], sys.argv[3:])
run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda e: print(e, flush=True)), (sys.argv[1],))
"""
LONG = {
    "sft": ["sft.num_train_epochs=60"],
    "rloo": ["policies=[dpo,rloo]", "rloo.num_train_epochs=20", "rloo.lora={r: 4, lora_alpha: 8}"],
}


def _train(stage, overrides):
    cfg = load_config(ROOT / "configs/micro.yaml", overrides)
    return run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), (stage,))[stage]


@pytest.mark.parametrize("stage", ["sft", "rloo"])
def test_a_killed_training_stage_resumes_from_its_checkpoint(tmp_path, stage):
    overrides = [f"store.root={tmp_path}", *LONG[stage], "compute.checkpoint_steps=5"]
    command = [sys.executable, "-c", SCRIPT, stage, str(ROOT / "configs/micro.yaml"), *overrides]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    path = os.pathsep.join(filter(None, [str(HOLD), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "HOLD_AT_CHECKPOINT_OF": stage}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, **quiet)
    checkpoints = tmp_path / ".checkpoints"
    deadline = time.time() + 300
    try:
        while not list(checkpoints.glob(f"{stage}-*/checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "training finished before it could be killed"
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # like a lost node: no cleanup runs
        proc.wait()
    assert not (tmp_path / stage).exists()  # nothing half-written where a finished artifact would be
    [saved] = checkpoints.glob(f"{stage}-*/checkpoint-*")  # held after the first one
    saved_step = checkpoint_step(saved)
    assert saved_step == 5

    art = _train(stage, overrides)
    assert art.metrics["resumed_from_step"] >= saved_step  # steps before the checkpoint not repeated
    state = json.loads((art.path / "manifest.json").read_text())
    uninterrupted = _train(stage, [f"store.root={tmp_path / 'plain'}", *LONG[stage], "compute.checkpoint_steps=null"])
    assert state["metrics"]["steps"] == uninterrupted.metrics["steps"]
    assert uninterrupted.metrics["resumed_from_step"] == 0
    assert art.id == uninterrupted.id  # checkpointing does not change what the artifact is
    assert not list(checkpoints.glob(f"{stage}-*"))  # checkpoints dropped once the artifact is complete


def test_a_checkpoint_cut_off_mid_save_is_skipped(tmp_path):
    from alignment.core.checkpoints import last_complete_checkpoint

    for step, state in ((5, '{"global_step": 5}'), (10, '{"global_st')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-15").mkdir()  # killed before its state was written
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-5"]
    assert last_complete_checkpoint(tmp_path / "missing") is None
