"""Each stage alone as its own flow, with inputs by artifact id or "latest" (the per-stage deployments)."""

import json
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.testing.utilities import prefect_test_harness

from alignment.config import load_config
from alignment.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_stage_flows_chain_by_id_and_latest(harness, tmp_path):
    from flows.pipeline import alignment_pipeline
    from flows.stage_flows import dpo_flow, evaluate_flow, reward_flow, sft_flow

    runs = tmp_path / "runs"
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={runs}"])
    with pytest.raises(FileNotFoundError, match="no base artifact"):
        sft_flow(cfg, base="latest")  # empty store: a clear error, nothing trained
    pipeline = json.loads((Path(alignment_pipeline(cfg)) / "manifest.json").read_text())["inputs"]

    store = ArtifactStore(runs)
    assert sft_flow(cfg, base="latest") == pipeline["sft"]  # same inputs: reused, not retrained
    assert reward_flow(cfg, base=pipeline["base"]) == pipeline["reward"]

    changed = load_config(ROOT / "configs/micro.yaml", [f"store.root={runs}", "dpo.beta=0.3"])
    dpo = dpo_flow(changed, sft=pipeline["sft"])
    assert dpo != pipeline["dpo"] and store.get(dpo).manifest["inputs"]["sft"] == pipeline["sft"]
    assert store.get(dpo).manifest["config"]["section"]["beta"] == 0.3

    evaluation = evaluate_flow(cfg, dpo="latest", reward="latest")  # the DPO just trained
    inputs = store.get(evaluation).manifest["inputs"]
    assert inputs["dpo"] == dpo and inputs["sft"] == pipeline["sft"] and inputs["reward"] == pipeline["reward"]
    assert (store.get(evaluation).path / "report.md").is_file()

    with pytest.raises(ParameterTypeError, match="dpo"):  # the form's pattern refuses another stage's id
        evaluate_flow(cfg, dpo=pipeline["sft"], reward="latest")
