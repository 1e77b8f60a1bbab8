"""Progress as structured events (never text to parse), and TRL arguments passed through from the config."""

import io

from alignment.core.context import StageContext
from alignment.core.progress import ProgressBars, ProgressEvent
from alignment.core.store import ArtifactStore
from alignment.graph import run_local


def test_training_reports_events_and_passthrough_arguments_take_effect(micro):
    cfg = micro("sft.max_length=96", "sft.report_to=[tensorboard]", "sft.logging_steps=1")
    events: list[ProgressEvent] = []
    sft = run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=events.append), ("sft",))["sft"]

    pretrain = [e for e in events if e.stage == "base" and e.step is not None]
    assert [(e.step, e.total) for e in pretrain] == [(20, 20)]  # micro: 20 steps, reported every 25 and at the end
    assert pretrain[0].loss > 0
    steps = [e for e in events if e.stage == "sft" and e.step is not None and e.loss is not None]
    total = sft.metrics["steps"]
    assert [e.step for e in steps] == list(range(1, total + 1)) and {e.total for e in steps} == {total}
    assert all("learning_rate" in e.logs for e in steps)
    assert events[-1] == ProgressEvent("sft", f"built {sft.id} ({sft.path})")

    assert sft.manifest["config"]["section"]["max_length"] == 96
    assert sft.manifest["config"]["section"]["report_to"] == ["tensorboard"]
    [event_file] = list((sft.path / "logs").rglob("events.out.tfevents.*"))  # TensorBoard wrote its log
    assert b'"max_length": 96' in event_file.read_bytes()  # the trainer ran with the section's max_length


def test_an_event_reads_as_one_line_and_knows_its_fraction():
    event = ProgressEvent("dpo", step=40, total=160, loss=0.39812, logs={"learning_rate": 0.00045})
    assert str(event) == "dpo: step 40/160, loss 0.3981, learning_rate 0.00045"
    assert event.fraction == 0.25 and ProgressEvent("world", "built").fraction is None
    assert str(ProgressEvent("world", "built world-1")) == "world: built world-1"


def test_progress_bars_follow_each_stage_to_its_end():
    shown = io.StringIO()
    bars = ProgressBars(enabled=True, file=shown)
    bars(ProgressEvent("sft", step=10, total=40))
    bars(ProgressEvent("sft", step=40, total=40, loss=0.1))
    bars(ProgressEvent("sft", "built sft-1"))  # no step: no bar change
    assert bars.bars["sft"].n == 40 and bars.bars["sft"].total == 40
    assert "sft: 100%" in shown.getvalue() and "40/40" in shown.getvalue()
