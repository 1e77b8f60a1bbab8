"""The temporary Prefect server a command starts when no ``PREFECT_API_URL`` is set, in a process group of its own.

Prefect starts that server (``SubprocessASGIServer``, on the first client call) in the command's process group, so a
terminal's Ctrl-C reaches it too: the server ends at once, and the run then waits minutes on retries to report its
*Crashed* state to a server that is gone. Ours is Prefect's, with the same uvicorn command and environment, started
in its own group: Ctrl-C reaches the command alone, which reports the crash and stops the server at exit (Prefect's
``atexit``). It is registered as the process's default server, as Prefect's own test harness registers its server,
and starts only when Prefect first asks for a server, as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings


class OwnGroupServer(SubprocessASGIServer):
    """Prefect's temporary server, its uvicorn process started in a process group of its own."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # Prefect 3.8's command and environment (prefect/server/api/server.py), plus ``process_group=0``.
        server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        return subprocess.Popen(
            args=[
                *(sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)),
                *("--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--log-level", "error", "--lifespan", "on"),
            ],
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
            process_group=0,
        )


@contextmanager
def temporary_server_in_own_group() -> Iterator[None]:
    """Within this, a temporary server Prefect starts is an ``OwnGroupServer``. One already registered (a test
    harness's) is left as it is; ours is unregistered at the end if it never started (a started one runs until
    the process exits, as Prefect's does)."""
    if None in SubprocessASGIServer._instances:
        yield
        return
    server = OwnGroupServer()  # Prefect's __new__ registers it under its port, None: the default server
    try:
        yield
    finally:
        if not server.running and SubprocessASGIServer._instances.get(None) is server:
            del SubprocessASGIServer._instances[None]
