"""Database lifecycle: Tortoise configuration, connect/close, health and migrations.

Both HTTP surfaces may run in one process (see ``app.asgi``), and each opens
the database when it starts serving; a reference count makes the second open
a no-op, so one pool serves both and the last one to stop closes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.connection import get_connection

from app.config import Settings

MODELS_MODULE = "app.models"
MIGRATIONS_MODULE = "app.migrations"
PG_ENGINE = "app.pgclient"
# Migrations may rewrite big tables: the per-statement timeout meant for web
# requests (MINITWIT_DB_TIMEOUT, 0.25 s) would abort them half way.
MIGRATION_STATEMENT_TIMEOUT = 3600.0
# But a migration must not wait long for a lock: while its ALTER or CREATE INDEX
# waits behind a live transaction, every query of the release still serving
# queues behind it. It gives up instead, and the release stops before its swap.
MIGRATION_LOCK_TIMEOUT = "2s"

_open_count = 0
_lock = asyncio.Lock()
_open_is_postgres: bool | None = None  # the dialect of the open database


def is_postgres() -> bool:
    """Whether the open database is PostgreSQL (the services' written-out statements)
    or SQLite (the ORM's). Known from the settings it was opened with: asking Tortoise's
    connection for its dialect took a context lookup and an event-loop check each time."""
    if _open_is_postgres is None:
        raise RuntimeError("no database is open (app.db.connect)")
    return _open_is_postgres


def connection_name(settings: Settings) -> str:
    """Named after the dialect: Tortoise caches compiled INSERTs per connection name,
    so a process that moves from SQLite to PostgreSQL (the test suite) must not
    reuse one name for both."""
    return "postgres" if settings.is_postgres else "sqlite"


async def _keep_session(_connection: Any) -> None:
    """What the pool does to a connection on release, beyond rolling back.

    asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` every time a connection goes back to the pool, and
    Tortoise takes one from the pool for every statement outside a
    transaction: one extra round trip per statement, 37% of PostgreSQL's CPU
    per simulator action (docs/performance.md). The app takes no advisory
    locks, opens no cursors, never LISTENs and never SETs a session variable,
    so there is nothing to reset; asyncpg still rolls back a transaction left
    open (and closes a broken connection) before calling this.
    """


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """Translate DATABASE_URL plus pool and timeout settings into Tortoise's config dict."""
    url = settings.database_url.replace("postgresql://", "postgres://", 1)
    connection = expand_db_url(url)
    credentials = connection["credentials"]
    if settings.is_postgres:
        # Tortoise's asyncpg engine, except that waiting for a pooled connection
        # is bounded too (see app.pgclient).
        connection["engine"] = PG_ENGINE
        credentials.setdefault("acquire_timeout", settings.db_timeout)
        credentials.setdefault("minsize", 1)
        credentials.setdefault("maxsize", settings.db_pool_size)
        # Fail fast instead of piling requests up behind a slow or absent database:
        # every wait for a pooled connection, every statement and every connection
        # attempt is bounded.
        credentials.setdefault("command_timeout", settings.db_timeout)
        credentials.setdefault("timeout", settings.db_connect_timeout)
        credentials.setdefault("max_inactive_connection_lifetime", 60.0)
        credentials.setdefault("reset", _keep_session)
    return {
        "connections": {connection_name(settings): connection},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": connection_name(settings),
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": False,
        "timezone": "UTC",
    }


async def connect(settings: Settings) -> None:
    """Open the ORM once per process; later calls only count."""
    global _open_count, _open_is_postgres
    async with _lock:
        if _open_count == 0:
            await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
            if not settings.is_postgres:
                # Open the SQLite connection now, not in the first request: Tortoise
                # opens it lazily while holding its connection lock, and a request
                # cancelled right then (a client that gave up) never releases that
                # lock, so every later query of the process would wait forever.
                await get_connection(connection_name(settings)).execute_query("SELECT 1")
            _open_is_postgres = settings.is_postgres
        _open_count += 1


async def close() -> None:
    global _open_count, _open_is_postgres
    async with _lock:
        _open_count -= 1
        if _open_count == 0:
            _open_is_postgres = None
            await Tortoise.close_connections()


async def ping(settings: Settings, timeout: float = 1.0) -> bool:
    """True when a trivial query round-trips within ``timeout`` seconds."""
    try:
        connection = get_connection(connection_name(settings))
        await asyncio.wait_for(connection.execute_query("SELECT 1"), timeout)
    except Exception:
        return False
    return True


async def migrate(settings: Settings, progress: Callable[[str], None] = print) -> None:
    """Apply every pending migration; never drops data (migrations only add)."""
    from tortoise.migrations.api import migrate as run_migrations

    def report(event: str, app_label: str, name: str) -> None:
        progress(f"{event}: {app_label}.{name}")

    settings = dataclasses.replace(
        settings, db_timeout=max(settings.db_timeout, MIGRATION_STATEMENT_TIMEOUT)
    )
    config = tortoise_config(settings)
    if settings.is_postgres:
        credentials = config["connections"][connection_name(settings)]["credentials"]
        credentials["server_settings"] = {"lock_timeout": MIGRATION_LOCK_TIMEOUT}
    try:
        await run_migrations(config=config, progress=report)
    finally:
        await Tortoise.close_connections()
