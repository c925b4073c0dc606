"""The ``minitwit`` console script: help, exit codes, and ``migrate`` on both databases.

Every test runs the installed command in a subprocess, as an operator would.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.config import Settings
from tests import postgres
from tests.conftest import ROOT
from tests.processes import run_minitwit

APP_TABLES = {"user", "follower", "message", "latest"}
SUBCOMMANDS = ["serve", "migrate", "import-sqlite"]


class RecordingEnvironment(dict[str, str]):
    """An empty environment that remembers every variable it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


@pytest.fixture(scope="module")
def variables() -> set[str]:
    """Every environment variable the settings read (what "all documented" covers)."""
    env = RecordingEnvironment()
    Settings.from_env(env)
    assert {"DATABASE_URL", "MINITWIT_ENV", "MINITWIT_SECRET_KEY", "MINITWIT_WORKERS"} <= env.asked
    return env.asked


# --- help and exit codes ----------------------------------------------------------


def test_top_level_help_lists_the_commands_and_every_variable(variables: set[str]) -> None:
    result = run_minitwit("--help")
    assert result.returncode == 0, result.stderr
    for command in SUBCOMMANDS:
        assert command in result.stdout
    missing = {name for name in variables if name not in result.stdout}
    assert not missing, f"minitwit --help does not document {sorted(missing)}"


def test_serve_help_describes_every_variable(variables: set[str]) -> None:
    result = run_minitwit("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: minitwit serve")
    assert "SIGTERM" in result.stdout
    missing = {name for name in variables if name not in result.stdout}
    assert not missing, f"minitwit serve --help does not document {sorted(missing)}"


@pytest.mark.parametrize("command", ["migrate", "import-sqlite"])
def test_other_commands_help_names_the_database_variable(command: str) -> None:
    result = run_minitwit(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: minitwit {command}")
    assert "DATABASE_URL" in result.stdout
    assert "minitwit --help" in result.stdout  # where the rest are


def test_help_works_whatever_the_environment_says() -> None:
    """Asking for help must not trip over configuration it is meant to explain."""
    for args in (["--help"], ["serve", "--help"]):
        result = run_minitwit(*args, MINITWIT_ENV="production", MINITWIT_WORKERS="abc")
        assert result.returncode == 0, result.stderr


def test_readme_documents_every_variable(variables: set[str]) -> None:
    documented = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| `"):  # a table row; its first cell names the variable(s)
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    missing = variables - documented
    assert not missing, f"README's configuration table lacks {sorted(missing)}"


@pytest.mark.parametrize(
    "args", [["bogus"], ["serve", "--port", "80"], []], ids=["unknown", "option", "none"]
)
def test_bad_usage_exits_2_with_usage(args: list[str]) -> None:
    result = run_minitwit(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: minitwit")
    assert "Traceback" not in result.stderr


def test_import_sqlite_needs_a_path() -> None:
    result = run_minitwit("import-sqlite")
    assert result.returncode == 2
    assert "path" in result.stderr


# --- migrate ----------------------------------------------------------------------


def sqlite_schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def test_migrate_creates_the_schema_in_an_empty_sqlite_file_then_is_a_no_op(
    tmp_path: Path,
) -> None:
    path = tmp_path / "minitwit.db"
    path.touch()  # an empty file, as an operator might create it
    url = f"sqlite://{path}"

    first = run_minitwit("migrate", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "apply_done: models.0001_initial" in first.stdout
    assert first.stdout.rstrip().endswith("database schema is up to date")
    assert {name for name, _ in sqlite_schema(path)} >= APP_TABLES
    schema = sqlite_schema(path)

    with sqlite3.connect(path) as conn:
        conn.execute(
            'INSERT INTO "user" (username, email, pw_hash) VALUES (?, ?, ?)',
            ("kept", "kept@example.com", "hash"),
        )
        user_id = conn.execute('SELECT id FROM "user" WHERE username = ?', ("kept",)).fetchone()
        conn.execute(
            "INSERT INTO message (author_id, text, pub_date, flagged) VALUES (?, ?, ?, ?)",
            (user_id[0], "still here", 1_700_000_000, False),
        )

    second = run_minitwit("migrate", DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "apply" not in second.stdout, "a second run must have nothing to apply"
    assert sqlite_schema(path) == schema
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            'SELECT u.username, m.text FROM message m JOIN "user" u ON u.id = m.author_id'
        ).fetchall()
    assert rows == [("kept", "still here")]


def test_migrate_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    result = run_minitwit("migrate", DATABASE_URL=f"sqlite://{path}")
    assert result.returncode == 0, result.stderr
    assert {name for name, _ in sqlite_schema(path)} >= APP_TABLES


@pytest.fixture
def fresh_postgres(pg_admin_url: str) -> Iterator[str]:
    url = asyncio.run(postgres.create_database(pg_admin_url))
    try:
        yield url
    finally:
        asyncio.run(postgres.drop_database(pg_admin_url, url))


async def pg_schema(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, column_name"
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' ORDER BY indexname"
        )
    finally:
        await conn.close()
    return [tuple(row) for row in [*rows, *indexes]]


def test_migrate_creates_the_schema_in_a_fresh_postgres_database_then_is_a_no_op(
    fresh_postgres: str,
) -> None:
    url = fresh_postgres
    first = run_minitwit("migrate", DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "apply_done: models.0001_initial" in first.stdout
    schema = asyncio.run(pg_schema(url))
    assert {row[0] for row in schema} >= APP_TABLES

    async def insert() -> None:
        conn = await asyncpg.connect(url)
        try:
            user_id = await conn.fetchval(
                'INSERT INTO "user" (username, email, pw_hash) VALUES ($1, $2, $3) RETURNING id',
                "kept",
                "kept@example.com",
                "hash",
            )
            await conn.execute(
                "INSERT INTO message (author_id, text, pub_date, flagged) VALUES ($1, $2, $3, $4)",
                user_id,
                "still here",
                1_700_000_000,
                False,
            )
        finally:
            await conn.close()

    async def rows() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch(
                'SELECT u.username, m.text FROM message m JOIN "user" u ON u.id = m.author_id'
            )
        finally:
            await conn.close()
        return [(row[0], row[1]) for row in found]

    asyncio.run(insert())
    second = run_minitwit("migrate", DATABASE_URL=url)
    assert second.returncode == 0, second.stderr
    assert "apply" not in second.stdout, "a second run must have nothing to apply"
    assert asyncio.run(pg_schema(url)) == schema
    assert asyncio.run(rows()) == [("kept", "still here")]


def test_migrate_is_not_bound_by_the_per_request_statement_timeout(fresh_postgres: str) -> None:
    """MINITWIT_DB_TIMEOUT caps web requests' statements; a migration must not inherit it."""
    result = run_minitwit("migrate", DATABASE_URL=fresh_postgres, MINITWIT_DB_TIMEOUT="0.001")
    assert result.returncode == 0, result.stderr
    assert {row[0] for row in asyncio.run(pg_schema(fresh_postgres))} >= APP_TABLES


async def _migrate_up_to_the_first(url: str) -> None:
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as run_migrations

    from app.db import tortoise_config
    from tests.conftest import make_settings

    try:
        await run_migrations(
            config=tortoise_config(make_settings(url)), target="models.0001_initial"
        )
    finally:
        await Tortoise.close_connections()


def test_migrate_gives_up_on_a_lock_instead_of_holding_up_the_live_app(
    fresh_postgres: str,
) -> None:
    """A release migrates while the previous release serves: an index that must wait
    behind a live transaction would queue every query after it. It gives up instead."""
    asyncio.run(_migrate_up_to_the_first(fresh_postgres))

    async def migrate_while_a_writer_holds_message() -> subprocess.CompletedProcess[str]:
        writer = await asyncpg.connect(fresh_postgres)
        try:
            async with writer.transaction():
                await writer.execute("LOCK TABLE message IN ROW EXCLUSIVE MODE")
                # The guard only stops a hang: without lock_timeout it waits an hour.
                return await asyncio.to_thread(
                    run_minitwit, "migrate", timeout=60, DATABASE_URL=fresh_postgres
                )
        finally:
            await writer.close()

    held = asyncio.run(migrate_while_a_writer_holds_message())
    assert held.returncode == 1
    assert held.stderr.startswith("minitwit migrate: gave up after waiting 2s for a lock")
    assert "Traceback" not in held.stderr
    after = run_minitwit("migrate", DATABASE_URL=fresh_postgres)
    assert after.returncode == 0, after.stderr
    assert "apply_done: models.0002_message_author_unflagged_idx" in after.stdout


def test_migrate_against_an_unreachable_database_is_a_clear_error() -> None:
    url = f"postgres://postgres@127.0.0.1:{postgres.free_port()}/minitwit"
    result = run_minitwit("migrate", DATABASE_URL=url, MINITWIT_DB_CONNECT_TIMEOUT="1")
    assert result.returncode == 1
    assert result.stderr.startswith("minitwit migrate: cannot reach the database")
    assert "Traceback" not in result.stderr


def test_migrate_with_a_bad_database_url_exits_2() -> None:
    result = run_minitwit("migrate", DATABASE_URL="mysql://root@127.0.0.1/minitwit")
    assert result.returncode == 2
    assert result.stderr.startswith("minitwit: configuration error: DATABASE_URL")
