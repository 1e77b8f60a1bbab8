"""Each stage alone as its own flow, with inputs by artifact id or "latest" (the per-stage deployments)."""

import json
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError

from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.graph import run_local

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out


def test_stage_flows_chain_by_id_and_latest(harness, tmp_path, micro):
    from flows.pipeline import alignment_pipeline
    from flows.stage_flows import dpo_flow, evaluate_flow, kto_flow, reward_flow, sft_flow

    runs = tmp_path / "runs"
    cfg = micro()
    with pytest.raises(FileNotFoundError, match="no base artifact"):
        sft_flow(cfg, base="latest")  # empty store: a clear error, nothing trained
    pipeline = json.loads((Path(alignment_pipeline(cfg)["evaluate"]) / "manifest.json").read_text())["inputs"]

    store = ArtifactStore(runs)
    assert sft_flow(cfg, base="latest") == pipeline["sft"]  # same inputs: reused, not retrained
    assert reward_flow(cfg, base=pipeline["base"]) == pipeline["reward"]

    changed = micro("dpo.beta=0.3")
    dpo = dpo_flow(changed, sft=pipeline["sft"])
    assert dpo != pipeline["dpo"] and store.get(dpo).manifest["inputs"]["sft"] == pipeline["sft"]
    assert store.get(dpo).manifest["config"]["section"]["beta"] == 0.3

    evaluation = evaluate_flow(cfg, policy="latest", reward="latest")  # the DPO just trained
    inputs = store.get(evaluation).manifest["inputs"]
    assert inputs["dpo"] == dpo and inputs["sft"] == pipeline["sft"] and inputs["reward"] == pipeline["reward"]
    [report] = [p.parent for p in (runs / "report").glob("*/manifest.json") if evaluation in p.read_text()]
    assert (report / "report.md").is_file()

    other = micro("model.tiny.max_steps=21")  # another base of the same world, and a reward model on it
    reward_elsewhere = run_local(StageContext(other, store, progress=lambda _: None), ("reward",))["reward"].id
    with pytest.raises(ValueError, match=f"uses base .* but {pipeline['base']} is also given"):
        evaluate_flow(cfg, policy=dpo, reward=reward_elsewhere)

    with pytest.raises(ParameterTypeError, match="policy"):  # the form's pattern refuses another stage's id
        evaluate_flow(cfg, policy=pipeline["sft"], reward="latest")

    # any policy of the registry, by its own flow: KTO on the same SFT model, though the config lists only DPO
    kto = kto_flow(cfg, sft="latest")
    assert kto.startswith("kto-") and store.get(kto).manifest["inputs"]["sft"] == pipeline["sft"]
    evaluation = store.get(evaluate_flow(cfg, policy=kto, reward=pipeline["reward"]))
    assert evaluation.manifest["inputs"]["kto"] == kto and "dpo" not in evaluation.manifest["inputs"]
