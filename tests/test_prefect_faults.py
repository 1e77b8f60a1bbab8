"""Faults above the library, each against a real local Prefect server and process worker running the deployed
pipeline (prefect.yaml, cloned from this repository as a worker does): a worker killed during SFT, the server
restarted mid-run, and four runs started at once on one store through a pool that runs two at a time."""

import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from prefect_server import (
    BIN,
    ROOT,
    TERMINAL,
    api_call,
    create_run,
    free_port,
    kill_tree,
    poll,
    prefect,
    run_state,
    run_states,
    server_env,
    start,
    start_server,
    stop,
    wait_for_run_processes,
    wait_until_terminal,
)

from alignment.config.base import section_dict
from alignment.config.loading import load_config
from alignment.core.checkpoints import checkpoint_step

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

POOL = "faults-pool"
LONG_SFT = ["sft.num_train_epochs=60", "compute.checkpoint_steps=5"]  # long enough to be caught mid-training
HOLD = ROOT / "tests/hold_at_checkpoint"  # on PYTHONPATH, training holds after its first checkpoint until killed
BUILT = re.compile(r"^(\w+): built (\S+) ")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with the pipeline deployed onto a process pool limited to two runs at a time."""
    home = tmp_path_factory.mktemp("faults-server")
    branch = subprocess.check_output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT, text=True).strip()
    env = server_env(
        home,
        free_port(),
        ALIGNMENT_REPO=str(ROOT),
        ALIGNMENT_REF=branch,
        ALIGNMENT_POOL=POOL,
        ALIGNMENT_STORE=str(home / "runs"),
        ALIGNMENT_INCOMING=str(home / "incoming"),
    )
    handle = {"env": env, "home": home, "log": home / "server.log"}
    handle["proc"] = start_server(env, handle["log"])
    try:
        for step in (
            ("work-pool", "create", POOL, "--type", "process"),
            ("work-pool", "set-concurrency-limit", POOL, "2"),
            ("--no-prompt", "deploy", "--name", "pipeline"),
        ):
            done = prefect(env, *step)
            assert done.returncode == 0, done.stdout + done.stderr
        handle["deployment"] = api_call(env, "GET", "/deployments/name/alignment-pipeline/pipeline").json()["id"]
        yield handle
    finally:
        stop(handle["proc"])


def _parameters(store: Path, *overrides: str) -> dict:
    return {"cfg": section_dict(load_config(ROOT / "configs/micro.yaml", [f"store.root={store}", *overrides]))}


def _worker(server, log: Path, hold_at_checkpoint_of: str | None = None):
    env = server["env"]
    if hold_at_checkpoint_of:  # the worker's flow runs inherit its environment
        path = os.pathsep.join(filter(None, [str(HOLD), env.get("PYTHONPATH")]))
        env = {**env, "PYTHONPATH": path, "HOLD_AT_CHECKPOINT_OF": hold_at_checkpoint_of}
    return start([BIN / "prefect", "worker", "start", "--pool", POOL], env, log)


def _built(server, flow_run_ids: list[str]) -> list[str]:
    """The artifact ids the runs' stages logged as built (not reused), in order."""
    ids, offset = [], 0
    while True:
        body = {
            "logs": {"flow_run_id": {"any_": flow_run_ids}},
            "limit": 200,
            "offset": offset,
            "sort": "TIMESTAMP_ASC",
        }
        page = api_call(server["env"], "POST", "/logs/filter", json=body).json()
        ids += [m.group(2) for log in page if (m := BUILT.match(log["message"].split(" - ", 1)[-1]))]
        if len(page) < 200:
            return ids
        offset += 200


def _wait_for(condition, timeout: float, what: str, log: Path) -> None:
    poll(what, condition, bool, timeout, log, interval=0.5)


def _manifests(store: Path) -> dict[str, float]:
    return {str(p.relative_to(store)): p.stat().st_mtime for p in store.glob("*/*/manifest.json")}


def test_four_runs_at_once_on_one_store_build_each_artifact_once(server, tmp_path):
    """Two configs, each started twice, all four at once; the pool runs two at a time. Every run completes and every
    artifact is built by exactly one run: the others wait on its lock and reuse it."""
    store = tmp_path / "runs"
    runs = [
        create_run(server["env"], server["deployment"], _parameters(store, f"dpo.beta={b}")) for b in (0.1, 0.2) * 2
    ]
    worker = _worker(server, tmp_path / "worker.log")
    most = 0

    def snapshot() -> list[str]:  # all four at one moment: one by one, a run that ended and its successor both count
        nonlocal most
        seen = [state["type"] for state in run_states(server["env"], runs).values()]
        most = max(most, seen.count("RUNNING"))
        return seen

    try:
        states = poll(
            "the four runs to reach a terminal state",
            snapshot,
            lambda seen: all(s in TERMINAL for s in seen),
            600,
            tmp_path / "worker.log",
        )
        wait_for_run_processes(worker, tmp_path / "worker.log")  # their last "built" lines reach the server
    finally:
        stop(worker)
    assert states == ["COMPLETED"] * 4, (tmp_path / "worker.log").read_text()[-5000:]
    assert 1 <= most <= 2  # the pool's limit held
    built = _built(server, runs)
    assert [i for i, n in Counter(built).items() if n > 1] == []  # built once each
    assert sorted(built) == sorted(p.parent.name for p in store.glob("*/*/manifest.json"))  # and nothing else
    assert len(list(store.glob("dpo/*"))) == len(list(store.glob("export/*"))) == 2  # one per config
    assert not (store / ".quarantine").exists()


def test_a_worker_killed_during_sft_is_retried_and_resumes_from_the_checkpoint(server, tmp_path):
    """The worker and its flow run die (SIGKILL, as with a lost node) after SFT saved a checkpoint. Retrying the
    run (what the UI's Retry does: back to Scheduled) on a new worker resumes SFT from that checkpoint and builds
    the very artifact the killed run was building."""
    store = tmp_path / "runs"
    run = create_run(server["env"], server["deployment"], _parameters(store, *LONG_SFT))
    log = tmp_path / "worker.log"
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
    saved_step = checkpoint_step(saved)
    assert not (store / "sft").exists() and run_state(server["env"], run)["type"] == "RUNNING"  # nothing told it

    retry = {"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True}
    api_call(server["env"], "POST", f"/flow_runs/{run}/set_state", json=retry)
    worker = _worker(server, log)
    try:
        (state,) = wait_until_terminal(server["env"], [run], 600, log, worker).values()
    finally:
        stop(worker)
    assert state["type"] == "COMPLETED", log.read_text()[-5000:]
    [sft] = store.glob("sft/*/manifest.json")
    assert sft.parent.name == building  # the same artifact id
    assert json.loads(sft.read_text())["metrics"]["resumed_from_step"] >= saved_step >= 5
    assert not list(checkpoints.glob("sft-*"))  # dropped once the artifact is complete


def test_a_server_restarted_mid_run_ends_in_a_state_and_a_rerun_reuses_what_was_finished(server, tmp_path):
    """The server stops (SIGTERM) during SFT and comes back on the same port and database. The run either completes
    or ends in a state the UI shows, never stuck as Running; a new run of the same parameters completes and
    rebuilds nothing that was finished."""
    store = tmp_path / "runs"
    parameters = _parameters(store, *LONG_SFT)
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
    after, rebuilt = _manifests(store), _built(server, [rerun])
    assert {p: after.get(p) for p in finished} == finished, (state, rebuilt)  # every finished artifact reused
    assert not set(rebuilt) & {Path(p).parent.name for p in finished}, (state, rebuilt)
    if state["type"] == "COMPLETED":
        assert (after, rebuilt) == (finished, []), state
