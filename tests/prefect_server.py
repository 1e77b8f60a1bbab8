"""A real local Prefect server and process workers for the tests that drive deployments the way a person does:
start the server on a free port with its own home and database, deploy from prefect.yaml, start workers, and
create runs through the REST API as the UI's Run button does.

Every wait here is bounded, and one that gives up says what it waited for, for how long, the last thing it saw
and the tail of the log of the process it waited on."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
AUTH_STRING = "admin:test-secret"
AUTH = tuple(AUTH_STRING.split(":"))
BIN = Path(sys.executable).parent
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
RETRYABLE = (429, 502, 503)  # answers Prefect's own client retries: rate limited, a busy SQLite ("database is locked")
BUILT = re.compile(r"^(\w+): built (\S+) \((.+)\)")  # a stage's log line when it built (not reused) an artifact
CLI_TIMEOUT = 300  # one `prefect` command (a deploy of every deployment imports every flow: ~20 s on 2 busy cores)

T = TypeVar("T")


def tail(log: Path | None, chars: int = 4000) -> str:
    """The end of ``log`` for a failure message ('' without a log)."""
    if log is None:
        return ""
    try:
        return f"\n--- last {chars} characters of {log} ---\n{log.read_text(errors='replace')[-chars:]}"
    except OSError as exc:
        return f"\n--- {log} unreadable: {exc} ---"


def poll(
    what: str,
    probe: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    log: Path | None = None,
    *,
    interval: float = 1.0,
    describe: Callable[[T], str] = repr,
) -> T:
    """``probe()`` every ``interval`` s until ``done`` holds for what it returned (returned), at most ``timeout`` s;
    then an AssertionError naming ``what``, the time waited, the last value seen and ``log``'s tail."""
    started = time.monotonic()
    while True:
        seen = probe()
        if done(seen):
            return seen
        waited = time.monotonic() - started
        assert waited < timeout, (
            f"gave up after {waited:.0f} s waiting for {what}; last seen: {describe(seen)}{tail(log)}"
        )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list, env: dict, log: Path) -> subprocess.Popen:
    """A process in its own session (so it and its children can be stopped together), output to ``log``."""
    with log.open("a") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


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


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still runs."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the process's group, SIGKILL to it if it has not ended within ``grace`` s; then SIGKILL to what
    it had started that still runs ``grace`` s later (a worker starts each flow run in a session of its own, outside
    its group: a run the worker left behind would go on training through the tests after it)."""
    if proc.poll() is not None:
        return
    below = descendants(proc.pid)
    deadline = time.monotonic() + grace
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        below += descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    while any(alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_all([pid for pid in below if alive(pid)])


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything below it, as a lost node would: no cleanup runs anywhere."""
    kill_all([proc.pid, *descendants(proc.pid)])
    proc.wait(30)


BACKENDS = ("sqlite", "postgres")  # the database behind a test server: a module's server fixture takes both


def database(request) -> str | None:
    """The database of a module's server for the backend ``request.param`` names: None for SQLite (the server's own
    file), or a new database on the PostgreSQL server of the ``postgres_url`` fixture (which skips, saying why, where
    there is none)."""
    if request.param == "sqlite":
        return None
    from postgres_cluster import create_database

    return create_database(request.getfixturevalue("postgres_url"), request.module.__name__.rsplit(".", 1)[-1])


def server_env(home: Path, port: int, database: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a server on ``port`` whose state lives in ``home`` and its database at ``database`` (a
    PostgreSQL URL; default: SQLite in ``home``), and of the CLI, deploys and workers that talk to it (basic auth on
    both sides, no analytics, workers that poll every 2 s)."""
    return os.environ | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": database or f"sqlite+aiosqlite:///{home}/prefect.db",
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        **extra,
    }


def deployment_env(request, home: Path, pool: str, **extra: str) -> dict[str, str]:
    """``server_env`` for a new server of the backend ``request.param`` names, on a free port, with the variables
    `make deploy` sets: this checkout's branch as the deployments' source, ``pool``, and a store and an incoming
    folder in ``home``."""
    branch = subprocess.check_output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT, text=True).strip()
    return server_env(
        home,
        free_port(),
        database(request),
        ALIGNMENT_REPO=str(ROOT),
        ALIGNMENT_REF=branch,
        ALIGNMENT_POOL=pool,
        ALIGNMENT_STORE=str(home / "runs"),
        ALIGNMENT_INCOMING=str(home / "incoming"),
        **extra,
    )


def deploy_pipeline(env: dict[str, str], pool: str, limit: int | None = None) -> str:
    """A process pool ``pool`` (at most ``limit`` runs at a time, where given) and the pipeline's deployment onto it,
    with the automations `prefect deploy` creates; the deployment's id."""
    steps = [("work-pool", "create", pool, "--type", "process")]
    steps += [("work-pool", "set-concurrency-limit", pool, str(limit))] if limit is not None else []
    for step in (*steps, ("--no-prompt", "deploy", "--name", "pipeline")):
        done = prefect(env, *step)
        assert done.returncode == 0, done.stdout + done.stderr
    return api_call(env, "GET", "/deployments/name/alignment-pipeline/pipeline").json()["id"]


def start_server(env: dict[str, str], log: Path, timeout: float = 180) -> subprocess.Popen:
    """``prefect server start`` with ``env``, once its API answers."""
    api = env["PREFECT_API_URL"]
    port = api.rsplit(":", 1)[1].split("/")[0]
    proc = start([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", port], env, log)

    def health() -> str:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            return f"HTTP {httpx.get(f'{api}/health', timeout=5, auth=AUTH).status_code}"
        except httpx.HTTPError as exc:
            return repr(exc)

    try:
        poll(
            f"the Prefect server on port {port} to answer GET /health",
            health,
            lambda seen: seen == "HTTP 200" or seen.startswith("exited"),
            timeout,
            log,
        )
    except AssertionError:
        stop(proc)
        raise
    assert proc.poll() is None, f"the Prefect server on port {port} exited with {proc.returncode}{tail(log)}"
    return proc


def prefect(env: dict[str, str], *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """One ``prefect`` CLI command against the server of ``env``, at most ``timeout`` s."""
    try:
        return subprocess.run(
            [BIN / "prefect", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        raise AssertionError(f"`prefect {' '.join(args)}` did not finish within {timeout:g} s:\n{out[-3000:]}") from exc


def request(
    env: dict[str, str], method: str, path: str, *, timeout: float = 120, auth=AUTH, **kwargs
) -> httpx.Response:
    """One request to the server's REST API (``path`` below /api), whatever its status, retried as Prefect's own
    client retries it, for at most ``timeout`` s in all: a 429, 502 or 503 answer (a busy SQLite server answers 503,
    "database is locked", now and then: nothing was written), a connection that could not be opened (nothing was
    sent), and for a request that only reads (GET, a filter, a count) a connection that broke or timed out."""
    reads = method == "GET" or path.endswith(("/filter", "/count"))
    transient = (httpx.ConnectError, httpx.ConnectTimeout) + ((httpx.TransportError,) if reads else ())
    started, attempt = time.monotonic(), 0
    while True:
        try:
            response = httpx.request(method, env["PREFECT_API_URL"] + path, timeout=30, auth=auth, **kwargs)
            if response.status_code not in RETRYABLE:
                return response
            last = f"HTTP {response.status_code}: {response.text[:500]}"
        except transient as exc:
            last = repr(exc)
        attempt += 1
        waited = time.monotonic() - started
        pause = min(2**attempt, 16)
        assert waited + pause < timeout, (
            f"{method} {path}: gave up after {attempt} attempts in {waited:.0f} s; last: {last}"
        )
        time.sleep(pause)


def api_call(env: dict[str, str], method: str, path: str, **kwargs) -> httpx.Response:
    """``request`` that must succeed (2xx)."""
    return request(env, method, path, **kwargs).raise_for_status()


def create_run(env: dict[str, str], deployment_id: str, parameters: dict) -> str:
    """A flow run of a deployment with custom parameters, as the UI's Run button creates it; its id."""
    return api_call(
        env, "POST", f"/deployments/{deployment_id}/create_flow_run", json={"parameters": parameters}
    ).json()["id"]


def run_state(env: dict[str, str], flow_run_id: str) -> dict:
    return api_call(env, "GET", f"/flow_runs/{flow_run_id}").json()["state"]


def flow_runs(env: dict[str, str], flow_run_ids: list[str]) -> list[dict]:
    """The runs' records, in the order of ``flow_run_ids``, read in one query: one moment's snapshot."""
    body = {"flow_runs": {"id": {"any_": flow_run_ids}}, "limit": len(flow_run_ids)}
    found = {run["id"]: run for run in api_call(env, "POST", "/flow_runs/filter", json=body).json()}
    assert set(found) == set(flow_run_ids), f"runs missing from the server: {set(flow_run_ids) - set(found)}"
    return [found[run] for run in flow_run_ids]


def run_states(env: dict[str, str], flow_run_ids: list[str]) -> dict[str, dict]:
    """The runs' states by id, read in one query (reading them one request after another, a run that finished
    before the next one started can be seen Running together with it)."""
    return {run["id"]: run["state"] for run in flow_runs(env, flow_run_ids)}


def most_at_once(runs: list[dict]) -> int:
    """The most of ``runs`` (flow-run records) that were Running at one moment, from the server's own start and
    end times; a run that ended at the moment another started is not counted with it."""
    unfinished = [run["id"] for run in runs if not (run["start_time"] and run["end_time"])]
    assert not unfinished, f"runs without a start or an end time: {unfinished}"
    times = [(run["start_time"], 1) for run in runs] + [(run["end_time"], -1) for run in runs]
    edges = sorted((datetime.fromisoformat(t), step) for t, step in times)
    running = most = 0
    for _, step in edges:  # at equal times the end (-1) sorts before the start (+1)
        running += step
        most = max(most, running)
    return most


def run_events(env: dict[str, str], flow_run_id: str) -> list[dict]:
    """The run's newest 50 ``prefect.flow-run.*`` events in the server's event store (``event``, ``occurred``, ...),
    oldest first. Events reach the store through the server's messaging, a moment after the state they tell of."""
    which = {"resource": {"id": [f"prefect.flow-run.{flow_run_id}"]}, "event": {"prefix": ["prefect.flow-run."]}}
    body = {"filter": {**which, "order": "DESC"}, "limit": 50}
    return api_call(env, "POST", "/events/filter", json=body).json()["events"][::-1]


def describe_states(states: dict[str, dict]) -> str:
    """``run id: TYPE (name)`` per run, for a failure message."""
    return ", ".join(f"{run}: {s['type']} ({s['name']})" for run, s in states.items())


def command_line(pid: int) -> str:
    """``pid``'s command line (its first 120 characters), "?" once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()[:120]
    except OSError:
        return "?"


def wait_for_run_processes(worker: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until ``worker`` has no flow-run process left. A run's process reports its terminal state before it has
    sent its last log lines (Prefect sends a run's logs in batches every 2 s, and what is left as the process
    exits): a worker stopped as soon as the server shows the runs ended terminates those processes, and their last
    lines (the last stage's "built ...") never reach the server."""
    poll(
        f"the flow-run processes of the worker (pid {worker.pid}) to exit after their runs ended",
        lambda: [pid for pid in descendants(worker.pid) if alive(pid)],
        lambda left: not left,
        timeout,
        log,
        interval=0.5,
        describe=lambda left: "; ".join(f"{pid}: {command_line(pid)}" for pid in left),
    )


def wait_until_terminal(
    env: dict[str, str], flow_run_ids: list[str], timeout: float, log: Path, worker: subprocess.Popen | None = None
) -> dict[str, dict]:
    """Poll until every run is in a terminal state, then (given the ``worker`` that runs them) until their processes
    have exited and sent all their logs; the states by run id (on a timeout: each run's last state and the worker
    log's tail)."""
    states = poll(
        f"flow runs {flow_run_ids} to reach a terminal state",
        lambda: run_states(env, flow_run_ids),
        lambda seen: all(s["type"] in TERMINAL for s in seen.values()),
        timeout,
        log,
        interval=2,
        describe=describe_states,
    )
    if worker is not None:
        wait_for_run_processes(worker, log)
    return states


def micro_parameters(store: Path, *overrides: str) -> dict:
    """A pipeline run's parameters: the micro config (seconds-long stages) on ``store``, with ``overrides``."""
    from alignment.config.base import section_dict
    from alignment.config.loading import load_config

    return {"cfg": section_dict(load_config(ROOT / "configs/micro.yaml", [f"store.root={store}", *overrides]))}


def built_artifacts(env: dict[str, str], flow_run_ids: list[str]) -> list[tuple[str, Path]]:
    """The artifacts (id, directory) the runs' stages logged as built (not reused), in order."""
    found, offset = [], 0
    while True:
        body = {
            "logs": {"flow_run_id": {"any_": flow_run_ids}},
            "limit": 200,
            "offset": offset,
            "sort": "TIMESTAMP_ASC",
        }
        page = api_call(env, "POST", "/logs/filter", json=body).json()
        for log in page:
            if m := BUILT.match(log["message"].split(" - ", 1)[-1]):
                found.append((m.group(2), Path(m.group(3))))
        if len(page) < 200:
            return found
        offset += 200


def built_ids(env: dict[str, str], flow_run_ids: list[str]) -> list[str]:
    """The artifact ids the runs' stages logged as built (not reused), in order."""
    return [artifact for artifact, _ in built_artifacts(env, flow_run_ids)]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "runs" / "screenshots"


@contextmanager
def logged_in_page(env: dict[str, str]) -> Iterator:
    """A page of headless chromium (Playwright) logged into the UI of the server of ``env`` with the auth string, on
    its dashboard; the browser is closed after."""
    from playwright.sync_api import sync_playwright

    flags = "--no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
    flags = [*flags.split(), "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{ui_url(env)}/login")
            page.fill("input[type=password]", AUTH_STRING)
            page.keyboard.press("Enter")
            page.wait_for_url("**/dashboard", timeout=60_000)
            yield page
        finally:
            browser.close()


def ui_url(env: dict[str, str]) -> str:
    return env["PREFECT_API_URL"].removesuffix("/api")
