"""Training stages in two CPU processes through ``accelerate launch`` (gloo DDP), the path a multi-GPU node takes."""

import sys
import time

import pytest
from prefect_server import alive

from alignment.core.context import StageContext
from alignment.core.launch import METRICS_FILE, LaunchError
from alignment.core.store import ArtifactStore
from alignment.graph import run_local
from alignment.models.modeling import load_causal_lm
from alignment.models.refs import base_ref

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out


def _run(cfg, targets, events=None):
    sink = events.append if events is not None else (lambda _: None)
    return run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=sink), targets)


def test_sft_and_dpo_train_in_two_processes_and_write_one_artifact_each(micro, caplog):
    cfg = micro("compute.num_processes=2")
    events = []
    with caplog.at_level("INFO", logger="alignment.core.launch"):
        values = _run(cfg, ("dpo",), events)
    launched = [r.getMessage() for r in caplog.records if r.name == "alignment.core.launch"]
    assert any("accelerate.commands.launch --num_processes 2" in line for line in launched)  # the command, logged
    assert len(launched) > 2  # and the children's own output, line by line
    assert not any("FutureWarning" in line for line in launched)  # the children filter what the parent does
    for stage in ("sft", "dpo"):
        art = values[stage]
        assert art.metrics["processes"] == 2  # both ranks joined the same DDP run
        assert art.manifest["config"]["section"]["num_processes"] == 2
        assert not (art.path / METRICS_FILE).exists() and not (art.path / "trainer").exists()
        assert [p.name for p in (art.path.parent).iterdir()] == [art.id]  # written once
    steps = [e.step for e in events if e.stage == "sft" and e.step is not None]
    assert steps and steps[-1] == values["sft"].metrics["steps"]  # rank 0's progress reached the parent
    model = load_causal_lm(base_ref(values["base"], cfg.model), [values["sft"].path / "adapter"])
    assert model.num_parameters() > 0
    # one process: another artifact (the global batch differs), same contract
    single = _run(micro(), ("sft",))["sft"]
    assert single.id != values["sft"].id and single.metrics["processes"] == 1
    assert "num_processes" not in single.manifest["config"]["section"]


def test_a_failing_rank_fails_the_stage_with_its_message_and_stores_nothing(micro, tmp_path, monkeypatch, caplog):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import alignment.models.modeling as m\n"
        "    def fit(trainer, run, section):\n"
        "        raise RuntimeError('rank 1 ran out of luck')\n"
        "    m.fit = fit\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hook))
    cfg = micro("compute.num_processes=2")
    with (
        caplog.at_level("INFO", logger="alignment.core.launch"),
        pytest.raises(  # the failing rank's own error, not only torchrun's summary
            LaunchError,
            match=r"(?s)sft: a process of `accelerate launch --num_processes 2` failed \(exit 1\).*out of luck",
        ),
    ):
        _run(cfg, ("sft",))
    assert sum("accelerate.commands.launch" in r.getMessage() for r in caplog.records) == 1  # an error: not retried
    assert not (tmp_path / "runs" / "sft").exists()  # nothing stored for the failed stage
    assert len(list((tmp_path / "runs" / "base").iterdir())) == 1  # what was built before the launch is kept


def test_a_rank_killed_by_a_signal_gets_one_more_launch(micro, tmp_path, monkeypatch, caplog):
    """A process that dies by a signal (SIGABRT, as gloo's rare "terminate called without an active exception")
    is a crash, not an error of the stage: the launch starts once more and the stage completes. Crashing on every
    launch fails the stage after two, saying so, with nothing stored. The hook crashes the launch the parent numbers
    1 (``ALIGNMENT_LAUNCH_ATTEMPT``), so a rare real crash in that launch cannot use up the second one."""
    hook = tmp_path / "hook"
    hook.mkdir()
    marker = tmp_path / "crashed-once"
    (hook / "sitecustomize.py").write_text(
        "import os, pathlib\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import alignment.models.modeling as m\n"
        "    marker = pathlib.Path(os.environ['CRASH_MARKER'])\n"
        "    def fit(trainer, run, section, _fit=m.fit):\n"
        "        if os.environ.get('CRASH_ALWAYS') or os.environ['ALIGNMENT_LAUNCH_ATTEMPT'] == '1':\n"
        "            marker.touch()\n"
        "            os.abort()\n"
        "        return _fit(trainer, run, section)\n"
        "    m.fit = fit\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.setenv("CRASH_MARKER", str(marker))
    cfg = micro("compute.num_processes=2")
    with caplog.at_level("INFO", logger="alignment.core.launch"):
        sft = _run(cfg, ("sft",))["sft"]
    launches = [r.getMessage() for r in caplog.records if "accelerate.commands.launch" in r.getMessage()]
    assert marker.exists() and len(launches) == 2 and sft.metrics["processes"] == 2
    assert "sft: a launched process was killed by a signal; launching again" in caplog.text

    monkeypatch.setenv("CRASH_ALWAYS", "1")
    with pytest.raises(LaunchError, match=r"^dpo: .* failed \(exit 1, killed by a signal in 2 launches\)"):
        _run(cfg, ("dpo",))
    assert not (tmp_path / "runs" / "dpo").exists()


@pytest.mark.parametrize("launcher_ends", [True, False], ids=["launcher-ends-on-sigterm", "launcher-hangs"])
def test_an_interrupted_launch_stops_every_process_even_those_that_ignore_sigterm(
    micro, tmp_path, monkeypatch, launcher_ends
):
    """When the parent is interrupted while its launch trains (SIGTERM raises Prefect's TerminationSignal there;
    Ctrl-C a KeyboardInterrupt), the launch's process group gets SIGTERM; once the launcher has ended, or after
    ``STOP_GRACE`` s if it hangs, SIGKILL ends what is left. Nothing trains on with nobody to read its output, and
    the parent does not wait for the training's end. The launcher here is a stand-in that starts a worker ignoring
    SIGTERM, then reports progress; the progress sink raises at that point, as a signal would."""
    from alignment.core import launch

    pids = tmp_path / "pids"
    script = (
        "import json, os, signal, subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(600)'], stdout=subprocess.PIPE)\n"
        "worker.stdout.readline()\n"  # the worker ignores SIGTERM from here on
        + ("" if launcher_ends else "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n")
        + f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{worker.pid}}')\n"
        "print('@alignment-progress ' + json.dumps({'stage': 'sft', 'step': 1, 'total': 10}), flush=True)\n"
        "time.sleep(600)\n"
    )
    monkeypatch.setattr(launch, "command", lambda compute, spec_path: [sys.executable, "-c", script])
    monkeypatch.setattr(launch, "STOP_GRACE", 3.0)

    class Interrupted(BaseException):
        pass

    def progress(event):
        raise Interrupted(event.step)

    cfg = micro("compute.num_processes=2")
    spec = launch.LaunchSpec(cfg, str(tmp_path), None, "sft", "m:f", "sft", {}, tmp_path / "out", None)
    start = time.monotonic()
    with pytest.raises(Interrupted):
        launch._launch_once(spec, progress)
    elapsed = time.monotonic() - start
    launcher, worker = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5  # SIGKILL is immediate; the reaper may take a moment
    while (alive(launcher) or alive(worker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(launcher) and not alive(worker)
    assert elapsed < 3.0 if launcher_ends else 3.0 <= elapsed < 30
