"""A throwaway PostgreSQL cluster for the tests that run the Prefect server on PostgreSQL, started the way a container
starts one (no systemd): ``initdb`` into a fresh directory, then ``postgres`` on a free loopback port, as the
``postgres`` user when run as root (PostgreSQL refuses root); stopped with a fast shutdown at the end.

    python tests/postgres_cluster.py start DIR   # prints the cluster's URL (also in DIR/url)
    python tests/postgres_cluster.py stop DIR

``.ci/run`` starts one, exports its URL as ``ALIGNMENT_TEST_POSTGRES_URL`` and stops it when the tests end; the tests
give each Prefect server a database of its own on it (``create_database``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

URL_VARIABLE = "ALIGNMENT_TEST_POSTGRES_URL"


def bindir() -> Path | None:
    """The directory of PostgreSQL's server programs (``initdb``, ``pg_ctl``): Debian's newest, or those on PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    found = debian[-1] if debian else shutil.which("initdb")
    return Path(found).parent if found else None


def _as_owner(directory: Path) -> list[str]:
    """The command prefix that runs a program as the cluster's owner: ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return []
    shutil.chown(directory, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: Path) -> str:
    """A new cluster in ``directory`` (created; it must not exist), listening on 127.0.0.1 only, trusting local
    connections; its SQLAlchemy URL (asyncpg driver, the ``postgres`` database)."""
    programs = bindir()
    if programs is None:
        raise FileNotFoundError("no PostgreSQL server programs (initdb): install Debian's postgresql package")
    directory.mkdir(parents=True)
    owner = _as_owner(directory)
    data, log = directory / "data", directory / "postgres.log"
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run([*owner, programs / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"], **run)
    port = _free_port()
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
    pg_ctl = [*owner, programs / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60"]
    subprocess.run([*pg_ctl, "-o", options, "start"], **run)
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    (directory / "url").write_text(url + "\n")
    return url


def stop(directory: Path) -> None:
    """A fast shutdown of the cluster in ``directory`` (open connections are closed, nothing is left running)."""
    programs = bindir()
    data = directory / "data"
    if programs is None or not (data / "postmaster.pid").exists():
        return
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*owner, programs / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], check=True, timeout=120)


def create_database(url: str, prefix: str) -> str:
    """A new, empty database on the server of ``url`` (named ``prefix`` and a random suffix); its URL."""
    import asyncio

    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server, _ = url.rsplit("/", 1)

    async def create() -> None:
        conn = await asyncpg.connect(server.replace("postgresql+asyncpg", "postgresql", 1) + "/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{server}/{name}"


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(start(where))
    elif command == "stop":
        stop(where)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop DIR")
