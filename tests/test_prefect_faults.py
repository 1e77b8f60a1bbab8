"""Faults above the library, each against a real local Prefect server (on SQLite, then on PostgreSQL) and process
worker running the deployed pipeline (prefect.yaml, cloned from this repository as a worker does): a worker killed
during SFT, whose run the server's automations mark Crashed and retry with no person involved, and the server
restarted mid-run. Many runs at once: tests/test_prefect_load.py."""

import json
import os
import time
from datetime import datetime
from pathlib import Path

import pytest
from prefect_server import (
    BACKENDS,
    BIN,
    CHROMIUM,
    ROOT,
    SCREENSHOTS,
    TERMINAL,
    api_call,
    built_ids,
    create_run,
    deploy_pipeline,
    deployment_env,
    kill_tree,
    logged_in_page,
    micro_parameters,
    poll,
    run_events,
    run_state,
    start,
    start_server,
    stop,
    ui_url,
    wait_for_run_processes,
    wait_until_terminal,
)

from alignment.core.checkpoints import checkpoint_step

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

POOL = "faults-pool"
LONG_SFT = ["sft.num_train_epochs=60", "compute.checkpoint_steps=5"]  # long enough to be caught mid-training
HOLD = ROOT / "tests/hold_at_checkpoint"  # on PYTHONPATH, training holds after its first checkpoint until killed
MISSED_HEARTBEATS = 2  # deployed with 2 (the default is 3) to keep the suite short: the same automation, 30 s sooner
HEARTBEAT_WINDOW = MISSED_HEARTBEATS * 30  # heartbeats every 30 s (the deployments' default and Prefect's minimum)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A server (SQLite, then PostgreSQL) with the pipeline deployed onto a process pool limited to two runs at a
    time, and the automations `prefect deploy` creates: a run silent for 2 heartbeats (30 s apart) is marked
    Crashed, then retried."""
    home = tmp_path_factory.mktemp(f"faults-server-{request.param}")
    env = deployment_env(request, home, POOL, ALIGNMENT_MISSED_HEARTBEATS=str(MISSED_HEARTBEATS))
    handle = {"env": env, "home": home, "log": home / "server.log", "backend": request.param}
    handle["proc"] = start_server(env, handle["log"])
    try:
        handle["deployment"] = deploy_pipeline(env, POOL, limit=2)
        yield handle
    finally:
        stop(handle["proc"])


def _worker(server, log: Path, hold_at_checkpoint_of: str | None = None):
    env = server["env"]
    if hold_at_checkpoint_of:  # the worker's flow runs inherit its environment
        path = os.pathsep.join(filter(None, [str(HOLD), env.get("PYTHONPATH")]))
        env = {**env, "PYTHONPATH": path, "HOLD_AT_CHECKPOINT_OF": hold_at_checkpoint_of}
    return start([BIN / "prefect", "worker", "start", "--pool", POOL], env, log)


def _wait_for(condition, timeout: float, what: str, log: Path) -> None:
    poll(what, condition, bool, timeout, log, interval=0.5)


def _manifests(store: Path) -> dict[str, float]:
    return {str(p.relative_to(store)): p.stat().st_mtime for p in store.glob("*/*/manifest.json")}


@pytest.fixture(scope="module")
def zombie(server, tmp_path_factory):
    """The worker and its flow run die (SIGKILL, as with a lost node) after SFT saved a checkpoint, and a new worker
    starts; nothing else is done to the run. What happened: its end state, its states in order, and what SFT had
    saved and was building."""
    env = server["env"]
    work = tmp_path_factory.mktemp("zombie")
    store, log = work / "runs", work / "worker.log"
    run = create_run(env, server["deployment"], micro_parameters(store, *LONG_SFT))
    worker = _worker(server, log, hold_at_checkpoint_of="sft")
    checkpoints = store / ".checkpoints"
    try:
        _wait_for(
            lambda: list(checkpoints.glob("sft-*/checkpoint-*/trainer_state.json")), 420, "an SFT checkpoint", log
        )
    finally:
        kill_tree(worker)
    [building] = [p.name for p in checkpoints.glob("sft-*")]
    [saved] = checkpoints.glob("sft-*/checkpoint-*")  # held after the first one
    left = {"sft_done": (store / "sft").exists(), "state": run_state(env, run)["type"]}
    worker = _worker(server, log)
    try:
        state = poll(
            f"run {run} to be marked Crashed, retried and to end",
            lambda: run_state(env, run),
            lambda seen: seen["type"] in ("COMPLETED", "FAILED", "CANCELLED"),
            HEARTBEAT_WINDOW + 600,
            log,
            interval=2,
        )
        wait_for_run_processes(worker, log)
    finally:
        stop(worker)
    history = api_call(env, "GET", f"/flow_run_states/?flow_run_id={run}").json()
    history.sort(key=lambda s: s["timestamp"])
    events = run_events(env, run)
    found = {"run": run, "state": state, "history": history, "events": events, "left": left, "log": log}
    return found | {"store": store, "building": building, "saved_step": checkpoint_step(saved)}


def test_a_zombie_run_of_a_killed_worker_is_crashed_retried_and_resumed_by_the_server(zombie):
    """With no request from the test to the run's state, the server's automations mark the silent run Crashed (no
    heartbeat for 2 x 30 s) and schedule it again; the new worker resumes SFT from the checkpoint and builds the very
    artifact the killed run was building."""
    assert zombie["left"] == {"sft_done": False, "state": "RUNNING"}  # nothing told the server
    assert zombie["state"]["type"] == "COMPLETED", zombie["log"].read_text()[-5000:]
    names = [s["name"] for s in zombie["history"]]
    crashed = names.index("Crashed")
    assert names[crashed - 1] == "Running" and names[crashed + 1] == "AwaitingRetry", names
    assert names[crashed + 1 :].count("Running") == 1 and names[-1] == "Completed", names
    assert f"no heartbeat for {HEARTBEAT_WINDOW} s" in zombie["history"][crashed]["message"]
    crashed_at = datetime.fromisoformat(zombie["history"][crashed]["timestamp"])
    heard = [datetime.fromisoformat(event["occurred"]) for event in zombie["events"]]
    silent = (crashed_at - max(t for t in heard if t < crashed_at)).total_seconds()  # since its last event
    # Not before its heartbeats were missed: the trigger's window ends `within` after the event that opened it, and
    # no later event came. Nor long after (the run was killed up to a heartbeat after its last event).
    assert HEARTBEAT_WINDOW <= silent <= HEARTBEAT_WINDOW + 60, silent
    [sft] = zombie["store"].glob("sft/*/manifest.json")
    assert sft.parent.name == zombie["building"]  # the same artifact id
    assert json.loads(sft.read_text())["metrics"]["resumed_from_step"] >= zombie["saved_step"] >= 5
    assert not list(zombie["store"].glob(".checkpoints/sft-*"))  # dropped once the artifact is complete


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it")
def test_a_zombie_runs_crash_and_retry_show_in_order_in_headless_chromium(server, zombie):
    """The UI's event feed of the run's own events, newest first: Completed, Running, AwaitingRetry, Crashed (and
    before them the first Running and the heartbeats); the screenshot goes to runs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"zombie-run-events-{server['backend']}.png"
    completed = "prefect.flow-run.Completed"  # the newest event: the feed is whole once the store holds it
    poll(
        "the Completed event in the store",
        lambda: [event["event"] for event in run_events(server["env"], zombie["run"])],
        lambda names: completed in names,
        60,
    )
    with logged_in_page(server["env"]) as page:
        run = f"prefect.flow-run.{zombie['run']}"
        page.set_viewport_size({"width": 1400, "height": 2600})  # the whole story in one picture
        page.goto(f"{ui_url(server['env'])}/events?resource={run}&events=prefect.flow-run.*")  # its own events
        page.get_by_text(completed, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=shot)
        text = page.inner_text("body")
    assert shot.stat().st_size > 10_000
    newest_first = [f"prefect.flow-run.{name}" for name in ("Completed", "Running", "AwaitingRetry", "Crashed")]
    assert all(name in text for name in newest_first), text[:3000]
    assert [text.index(name) for name in newest_first] == sorted(text.index(name) for name in newest_first), text[:3000]


def test_a_server_restarted_mid_run_ends_in_a_state_and_a_rerun_reuses_what_was_finished(server, tmp_path):
    """The server stops (SIGTERM) during SFT and comes back on the same port and database. The run either completes
    or ends in a state the UI shows, never stuck as Running; a new run of the same parameters completes and
    rebuilds nothing that was finished."""
    store = tmp_path / "runs"
    parameters = micro_parameters(store, *LONG_SFT)
    run = create_run(server["env"], server["deployment"], parameters)
    log = tmp_path / "worker.log"
    worker = _worker(server, log)
    try:
        _wait_for(lambda: list(store.glob(".checkpoints/sft-*/checkpoint-*")), 420, "an SFT checkpoint", log)
        stop(server["proc"])
        time.sleep(3)
        server["proc"] = start_server(server["env"], server["log"])
        (state,) = wait_until_terminal(server["env"], [run], 600, log, worker).values()
        assert state["type"] in TERMINAL
        finished = _manifests(store)
        assert "world" in {Path(p).parts[0] for p in finished}  # stages before SFT were finished before the restart
        rerun = create_run(server["env"], server["deployment"], parameters)
        (again,) = wait_until_terminal(server["env"], [rerun], 600, log, worker).values()
    finally:
        stop(worker)
    assert again["type"] == "COMPLETED", f"{state} then {again}\n{log.read_text()[-5000:]}"
    after, rebuilt = _manifests(store), built_ids(server["env"], [rerun])
    assert {p: after.get(p) for p in finished} == finished, (state, rebuilt)  # every finished artifact reused
    assert not set(rebuilt) & {Path(p).parent.name for p in finished}, (state, rebuilt)
    if state["type"] == "COMPLETED":
        assert (after, rebuilt) == (finished, []), state
