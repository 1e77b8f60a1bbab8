"""A real local Prefect server and process workers for the tests that drive deployments the way a person does:
start the server on a free port with its own home and database, deploy from prefect.yaml, start workers, and
create runs through the REST API as the UI's Run button does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
AUTH_STRING = "admin:test-secret"
AUTH = tuple(AUTH_STRING.split(":"))
BIN = Path(sys.executable).parent
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list, env: dict, log: Path) -> subprocess.Popen:
    """A process in its own session (so it and its children can be stopped together), output to ``log``."""
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL if it has not ended within 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first found first: a process worker starts each flow
    run in a session of its own, so killing the worker's group alone would leave the run going."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything below it, as a lost node would: no cleanup runs anywhere."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def server_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a server on ``port`` whose state lives in ``home``, and of the CLI, deploys and workers
    that talk to it (basic auth on both sides, no analytics, workers that poll every 2 s)."""
    return os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        **extra,
    }


def start_server(env: dict[str, str], log: Path, timeout: float = 180) -> subprocess.Popen:
    """``prefect server start`` with ``env``, once its API answers."""
    api = env["PREFECT_API_URL"]
    port = api.rsplit(":", 1)[1].split("/")[0]
    proc = start([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port], env, log)
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2, auth=AUTH).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(1)


def api_call(env: dict[str, str], method: str, path: str, **kwargs) -> httpx.Response:
    """One authenticated request to the server's REST API (``path`` below /api), retried on 503 and 429 as
    Prefect's own client does (a busy SQLite server answers 503 now and then)."""
    for attempt in range(6):
        response = httpx.request(method, env["PREFECT_API_URL"] + path, timeout=30, auth=AUTH, **kwargs)
        if response.status_code not in (429, 503):
            break
        time.sleep(2**attempt)
    return response.raise_for_status()


def create_run(env: dict[str, str], deployment_id: str, parameters: dict) -> str:
    """A flow run of a deployment with custom parameters, as the UI's Run button creates it; its id."""
    return api_call(
        env, "POST", f"/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters}
    ).json()["id"]


def run_state(env: dict[str, str], flow_run_id: str) -> dict:
    return api_call(env, "GET", f"/flow_runs/{flow_run_id}").json()["state"]


def wait_until_terminal(env: dict[str, str], flow_run_ids: list[str], timeout: float, log: Path) -> dict[str, dict]:
    """Poll until every run is in a terminal state; the states by run id (the worker log's tail on a timeout)."""
    deadline = time.time() + timeout
    while True:
        states = {run: run_state(env, run) for run in flow_run_ids}
        if all(s["type"] in TERMINAL for s in states.values()):
            return states
        assert time.time() < deadline, f"{states}\n{log.read_text()[-4000:]}"
        time.sleep(2)
