"""Shared fixtures: a migrated database per backend, app test clients, a live server.

Every database-backed test runs twice, on SQLite and on PostgreSQL. Each
backend gets one freshly created and migrated database for the session
(dropped at the end); ``clean_db`` empties it before each test.

In CI (``MINITWIT_FORBID_SKIPS=1``, set by ``.ci/run``) a skipped test is a
failed test: a missing browser or promtool must not pass silently.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart.typing import TestClientProtocol as Client

from app.config import Settings
from app.db import migrate
from app.factory import create_api_app, create_web_app
from tests import postgres

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_AUTH = {"Authorization": "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"}
BACKENDS = ["sqlite", "postgres"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    forbidden = os.environ.get("MINITWIT_FORBID_SKIPS") == "1"
    if forbidden and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped, but skips are forbidden here (MINITWIT_FORBID_SKIPS=1): {reason}"
        )


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with postgres.admin_url() as url:
        if url is None:
            pytest.skip(
                "no PostgreSQL: set MINITWIT_TEST_POSTGRES_URL, run one on 127.0.0.1:5432, "
                "or install initdb/pg_ctl"
            )
        yield url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "hash_concurrency": 2,
        "db_timeout": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A new database on ``backend`` with every migration applied."""
    if backend == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('sqlite') / 'minitwit.db'}"
        asyncio.run(migrate(make_settings(url), progress=lambda _: None))
        yield url
        return
    admin = request.getfixturevalue("pg_admin_url")
    url = asyncio.run(postgres.create_database(admin))
    try:
        asyncio.run(migrate(make_settings(url), progress=lambda _: None))
        yield url
    finally:
        asyncio.run(postgres.drop_database(admin, url))


async def wipe(database_url: str) -> None:
    """Empty every table the app owns and reset ``latest``; keeps the schema."""
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite://"), timeout=10)
        with conn:
            conn.executescript(
                'DELETE FROM message; DELETE FROM follower; DELETE FROM "user"; '
                "UPDATE latest SET value = -1;"
            )
        conn.close()
        return
    pg = await asyncpg.connect(database_url)
    try:
        await pg.execute(
            'TRUNCATE "user", follower, message RESTART IDENTITY CASCADE; '
            "UPDATE latest SET value = -1"
        )
    finally:
        await pg.close()


@pytest.fixture
async def clean_db(database_url: str) -> str:
    await wipe(database_url)
    return database_url


@pytest.fixture
def settings(clean_db: str) -> Settings:
    return make_settings(clean_db)


@pytest.fixture
async def api_client(settings: Settings) -> AsyncIterator[Client]:
    app = create_api_app(settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


@pytest.fixture
async def web_client(settings: Settings) -> AsyncIterator[Client]:
    app = create_web_app(settings)
    async with app.test_app() as test_app:
        yield test_app.test_client()


@dataclass
class LiveServer:
    """``minitwit serve`` in a subprocess, on free loopback ports."""

    process: subprocess.Popen[bytes]
    web_url: str
    api_url: str
    database_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_server(
    database_url: str, log_dir: Path, workers: int = 1, env: dict[str, str] | None = None
) -> LiveServer:
    """``minitwit serve`` on free loopback ports, healthy, with only the given configuration."""
    from tests.processes import launch  # tests.processes imports this module

    return launch(database_url, log_dir, workers=workers, env=env)


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database (by the real ``minitwit migrate``) for servers a
    test starts with its own environment, where the backend does not matter."""
    from tests.processes import run_minitwit  # tests.processes imports this module

    path = tmp_path_factory.mktemp("sqlite-served") / "minitwit.db"
    result = run_minitwit("migrate", DATABASE_URL=f"sqlite://{path}")
    assert result.returncode == 0, result.stderr
    return f"sqlite://{path}"


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    """Servers a test starts; whatever is still running at the end is stopped."""
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path_factory.mktemp("live"))
    yield server
    server.stop()


@pytest.fixture
async def live(live_server: LiveServer) -> LiveServer:
    """The session's live server, with an empty database."""
    await wipe(live_server.database_url)
    return live_server
