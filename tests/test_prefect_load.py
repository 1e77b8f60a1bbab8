"""Load, measured: eight runs of the deployed pipeline submitted at once (the micro config: six on one shared store,
three configs each started twice, and two on stores of their own) through a process pool limited to 2 runs at a time,
then eight more through the same pool limited to 4, against a real Prefect server on SQLite and on PostgreSQL.

Nothing may be lost: every run ends Completed, the pool's limit holds, every artifact is built by exactly one run
(the others wait on its lock and reuse it), and the server answers no request with a 5xx on PostgreSQL (its access
log counts them; on SQLite they are counted, not refused). Each round's row of the load table in
docs/prefect-and-gpu.md (runs, limit, backend, wall time, requests, 5xx answers) goes to runs/load/<backend>.json."""

import json
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prefect_server import (
    BACKENDS,
    BIN,
    ROOT,
    TERMINAL,
    built_artifacts,
    create_run,
    deploy_pipeline,
    deployment_env,
    flow_runs,
    micro_parameters,
    most_at_once,
    poll,
    prefect,
    start,
    start_server,
    stop,
    wait_for_run_processes,
)

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out

POOL = "load-pool"
LIMITS = (2, 4)
SHARED_CONFIGS = ("dpo.beta=0.1", "dpo.beta=0.2", "dpo.beta=0.3")  # each started twice on the shared store
OWN_STORES = 2
RESULTS = ROOT / "runs" / "load"
ACCESS = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A server (SQLite, then PostgreSQL) whose access log is kept, with the pipeline deployed onto a process pool."""
    home = tmp_path_factory.mktemp(f"load-server-{request.param}")
    env = deployment_env(request, home, POOL, PREFECT_SERVER_LOGGING_LEVEL="INFO")  # uvicorn's access log
    handle = {"env": env, "backend": request.param, "log": home / "server.log"}
    handle["proc"] = start_server(env, handle["log"])
    try:
        handle["deployment"] = deploy_pipeline(env, POOL)
        yield handle
    finally:
        stop(handle["proc"])


def _answers(log: Path, start: int) -> Counter:
    """The server's answers since byte ``start`` of its log, by status code."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return Counter(m.group(3) for m in ACCESS.finditer(text))


def _round(server, limit: int, work: Path) -> dict:
    """Eight runs submitted at once through the pool limited to ``limit``; the round's row of the load table."""
    env = server["env"]
    done = prefect(env, "work-pool", "set-concurrency-limit", POOL, str(limit))
    assert done.returncode == 0, done.stdout + done.stderr
    work.mkdir(parents=True)
    shared = work / "shared"
    parameters = [micro_parameters(shared, c) for c in SHARED_CONFIGS * 2]
    parameters += [micro_parameters(work / f"own-{i}") for i in range(OWN_STORES)]
    log, mark = work / "worker.log", server["log"].stat().st_size
    worker = start([BIN / "prefect", "worker", "start", "--pool", POOL], env, log)
    started = time.monotonic()

    def types(records: list[dict]) -> list[str]:
        return [record["state"]["type"] for record in records]

    try:
        with ThreadPoolExecutor(len(parameters)) as pool:  # at once, as eight people pressing Run would
            runs = list(pool.map(lambda p: create_run(env, server["deployment"], p), parameters))
        ended = poll(
            f"{len(runs)} runs to end",
            lambda: flow_runs(env, runs),
            lambda records: all(t in TERMINAL for t in types(records)),
            1500,
            log,
            describe=lambda records: str(types(records)),
        )
        wall = time.monotonic() - started
        wait_for_run_processes(worker, log)  # their last "built" lines reach the server
    finally:
        stop(worker)
    answers = _answers(server["log"], mark)
    states = types(ended)
    assert states == ["COMPLETED"] * len(runs), log.read_text()[-5000:]
    most = most_at_once(ended)  # the server's start and end times: a poll could miss a short run
    assert 1 <= most <= limit, f"{most} runs were Running at once through a pool limited to {limit}"
    built = [path for _, path in built_artifacts(env, runs)]  # the same config on two stores: two artifacts
    assert [p for p, n in Counter(built).items() if n > 1] == []  # built once each
    assert sorted(built) == sorted(p.parent for p in work.glob("*/*/*/manifest.json"))  # and nothing else
    assert len(list(shared.glob("dpo/*"))) == len(SHARED_CONFIGS) and not list(work.glob("*/.quarantine"))
    errors = sum(n for code, n in answers.items() if code.startswith("5"))
    if server["backend"] == "postgres":
        assert errors == 0, f"the server answered 5xx on PostgreSQL: {dict(answers)}"
    return {
        "backend": server["backend"],
        "runs": len(runs),
        "limit": limit,
        "most_running": most,
        "wall_seconds": round(wall, 1),
        "completed": states.count("COMPLETED"),
        "artifacts_built": len(built),
        "requests": sum(answers.values()),
        "errors_5xx": errors,
        "answers": dict(sorted(answers.items())),
    }


def test_load_eight_runs_at_once_through_a_pool_of_2_then_4_lose_nothing(server, tmp_path):
    rows = [_round(server, limit, tmp_path / f"limit-{limit}") for limit in LIMITS]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{server['backend']}.json").write_text(json.dumps(rows, indent=1) + "\n")
