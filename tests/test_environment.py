"""The environment defaults (offline hub, no telemetry) hold wherever a flow starts, before any library reads them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignment.core import environment

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from prefect.flows import load_flow_from_entrypoint
load_flow_from_entrypoint(sys.argv[1])  # as a worker loads a deployment: by file path
import huggingface_hub.constants, os
print(huggingface_hub.constants.HF_HUB_OFFLINE, os.environ["HF_HUB_DISABLE_TELEMETRY"])
"""


@pytest.mark.parametrize(
    "entrypoint",
    ["flows/pipeline.py:alignment_pipeline", "flows/stage_flows.py:sft_flow", "flows/retrain.py:retrain_flow"],
)
def test_a_worker_loading_a_flow_by_path_gets_the_offline_hub(entrypoint):
    env = {k: v for k, v in os.environ.items() if k not in environment.DEFAULTS}  # none of the defaults set yet
    done = subprocess.run([sys.executable, "-c", SCRIPT, entrypoint], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "1"]


def test_the_trainers_checkpoint_ordering_notice_is_held_back(tmp_path):
    """Two checkpoints saved within a second make transformers say "mtime may not be reliable" and sort by step
    (the right order anyway); after ``environment.apply`` the notice never reaches a handler, other records do."""
    import logging

    from transformers.trainer_utils import sort_checkpoints

    from alignment.core import environment

    environment.apply()
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-5").mkdir()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("transformers.trainer_utils")
    logger.addHandler(handler)
    try:
        ordered = sort_checkpoints(str(tmp_path), use_mtime=True)
        logger.warning("another notice")
    finally:
        logger.removeHandler(handler)
    assert [p.rsplit("/", 1)[1] for p in ordered] == ["checkpoint-5", "checkpoint-10"]
    assert seen == ["another notice"]
