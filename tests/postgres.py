"""Find a PostgreSQL server for the tests, or start a throwaway one.

Order: ``MINITWIT_TEST_POSTGRES_URL`` (an admin URL the tests may create
databases on), then the server on 127.0.0.1:5432, then a private cluster made
with ``initdb``/``pg_ctl`` in a temporary directory when those are installed.
The tests only ever touch databases they created themselves, named
``minitwit_test_<random>``, and drop them at the end.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster on a free loopback port, removed afterwards."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("initdb/pg_ctl not installed")
    workdir = tempfile.mkdtemp(prefix="minitwit-pg-")
    data = os.path.join(workdir, "data")
    port = free_port()
    user = "postgres"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account
        shutil.chown(workdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, initdb, "-D", data, "-U", user, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            pg_ctl,
            "-D",
            data,
            "-w",
            "-l",
            os.path.join(workdir, "log"),
            "-o",
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgres://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def admin_url() -> Iterator[str | None]:
    explicit = os.environ.get("MINITWIT_TEST_POSTGRES_URL")
    if explicit:
        yield explicit
        return
    if asyncio.run(_reachable(DEFAULT_ADMIN_URL)):
        yield DEFAULT_ADMIN_URL
        return
    try:
        with throwaway_cluster() as url:
            yield url
    except (RuntimeError, subprocess.CalledProcessError):
        yield None


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def create_database(admin: str) -> str:
    """Create an empty database with a unique name and return its URL."""
    name = f"minitwit_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin, name)


async def drop_database(admin: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    assert name.startswith("minitwit_test_"), "refusing to drop a database the tests did not make"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
