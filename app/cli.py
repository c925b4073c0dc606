"""The ``minitwit`` command: serve, migrate, import-sqlite, logs (setup, search), simulate.

Configuration comes from the environment only (see the README); the command
line chooses what to do, not how the app is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from app.config import ConfigError, Settings
from app.logsearch.cli import add_logs_parser
from app.simulator.cli import add_simulate_parser

# Every variable the app reads, as ``--help`` shows it (the README has the same table).
ENVIRONMENT_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("DATABASE_URL", "sqlite://minitwit.db", "sqlite://PATH or postgres://user:pw@host:port/db"),
    ("MINITWIT_ENV", "development", "development, test or production (strict checks)"),
    ("MINITWIT_SECRET_KEY", "dev secret", "signs session cookies; 32+ chars in production"),
    ("MINITWIT_HOST", "127.0.0.1", "address to listen on"),
    ("MINITWIT_WEB_PORT", "5000", "web UI port (the API also under /api)"),
    ("MINITWIT_API_PORT", "5001", "simulator API port"),
    ("MINITWIT_WORKERS", "1", "uvicorn worker processes, each serving both ports"),
    ("SIMULATOR_USERNAME", "simulator", "the simulator's Basic user"),
    ("SIMULATOR_PASSWORD", "super_safe!", "the simulator's Basic password"),
    ("MINITWIT_DB_POOL_SIZE", "10", "PostgreSQL connections per worker"),
    ("MINITWIT_DB_TIMEOUT", "0.25", "seconds a request's statement may take (then 503)"),
    ("MINITWIT_DB_CONNECT_TIMEOUT", "2", "seconds to wait for a new PostgreSQL connection"),
    ("MINITWIT_HASH_CONCURRENCY", "2", "password hashes computed at once per worker"),
    ("MINITWIT_SHUTDOWN_TIMEOUT", "10", "seconds SIGTERM waits for in-flight requests"),
    ("MINITWIT_SECURE_COOKIES", "on in production", "mark the session cookie Secure"),
    ("MINITWIT_FORWARDED_ALLOW_IPS", "127.0.0.1", "proxies trusted for X-Forwarded-For"),
    ("MINITWIT_LOG_LEVEL", "INFO", "log level"),
    ("MINITWIT_SLOW_REQUEST_SECONDS", "0.3", "requests slower than this are logged as slow"),
    ("LOGSTASH_HOST", "unset", "also ship JSON logs to Logstash over TCP"),
    ("LOGSTASH_PORT", "5000", "Logstash TCP port"),
    ("MINITWIT_LOGSTASH_QUEUE_SIZE", "10000", "log events buffered for Logstash"),
    ("MINITWIT_LOG_DROP_REPORT_SECONDS", "60", "how often dropped Logstash events are reported"),
    ("MINITWIT_REVISION", "unknown", "the deployed revision, reported in metrics"),
    ("MINITWIT_FAULT_INJECTION", "off", "test-only fault switch; refused in production"),
    ("MINITWIT_OBSERVABILITY", "on", "off: no HTTP metrics or access events (benchmarks only)"),
    ("PROMETHEUS_MULTIPROC_DIR", "a temp dir", "where workers share their metrics"),
)
DATABASE_VARIABLES = frozenset({"DATABASE_URL", "MINITWIT_DB_CONNECT_TIMEOUT"})


def environment_help(names: frozenset[str] | None = None) -> str:
    lines = [
        f"  {name} (default: {default})\n      {meaning}"
        for name, default, meaning in ENVIRONMENT_VARIABLES
        if names is None or name in names
    ]
    heading = "environment variables (the only configuration):"
    if names is not None:
        heading = "environment variables it uses (all of them: minitwit --help):"
    return "\n".join([heading, *lines])


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual; keeps the environment table's own line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from app.server import CannotListen, serve

    try:
        serve(settings)
    except CannotListen as exc:
        print(f"minitwit serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from app.db import MIGRATION_LOCK_TIMEOUT, migrate
    from app.errors import is_database_outage, is_lock_timeout

    try:
        asyncio.run(migrate(settings))
    except Exception as exc:
        if is_lock_timeout(exc):
            print(
                f"minitwit migrate: gave up after waiting {MIGRATION_LOCK_TIMEOUT} for a lock: "
                "a transaction holds a table this migration changes (the app still serving "
                "is not held up meanwhile). Run it again once that transaction has ended.",
                file=sys.stderr,
            )
            return 1
        if not is_database_outage(exc):
            raise
        print(f"minitwit migrate: cannot reach the database: {exc!r}", file=sys.stderr)
        return 1
    print("database schema is up to date")
    return 0


# The import is one long transaction of batched statements; the per-statement
# timeout meant for web requests (MINITWIT_DB_TIMEOUT, 0.25 s) would abort it.
IMPORT_STATEMENT_TIMEOUT = 600.0


def _import_sqlite(settings: Settings, args: argparse.Namespace) -> int:
    from tortoise.exceptions import BaseORMException

    from app import db
    from app.legacy_import import NotALegacyDatabase, import_legacy

    settings = dataclasses.replace(
        settings, db_timeout=max(settings.db_timeout, IMPORT_STATEMENT_TIMEOUT)
    )

    async def run() -> int:
        await db.connect(settings)
        try:
            report = await import_legacy(Path(args.path))
        except NotALegacyDatabase as exc:
            print(f"minitwit import-sqlite: {exc}", file=sys.stderr)
            return 2
        except (BaseORMException, TimeoutError) as exc:
            print(
                f"minitwit import-sqlite: the import failed and was rolled back, "
                f"nothing was imported: {exc!r}",
                file=sys.stderr,
            )
            return 1
        finally:
            await db.close()
        for line in report.lines():
            print(line)
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    raw = _HelpFormatter
    parser = argparse.ArgumentParser(
        prog="minitwit",
        description="MiniTwit microblog. Configured by environment variables only.",
        epilog=environment_help(),
        formatter_class=raw,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the web UI and the simulator API",
        description=(
            "Serve the web UI on $MINITWIT_WEB_PORT (5000) and the simulator API on "
            "$MINITWIT_API_PORT (5001) with $MINITWIT_WORKERS uvicorn worker processes. "
            "The database is $DATABASE_URL (default sqlite://minitwit.db); run "
            "'minitwit migrate' first. SIGTERM shuts down gracefully."
        ),
        epilog=environment_help(),
        formatter_class=raw,
    )
    serve.set_defaults(handler=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply pending schema migrations to $DATABASE_URL. Never drops data.",
        epilog=environment_help(DATABASE_VARIABLES),
        formatter_class=raw,
    )
    migrate.set_defaults(handler=_migrate)
    importer = commands.add_parser(
        "import-sqlite",
        help="import a legacy ITU-MiniTwit SQLite database",
        description=(
            "Import users (with their password hashes), follows and messages from a "
            "legacy ITU-MiniTwit SQLite file into $DATABASE_URL. Idempotent; prints counts."
        ),
        epilog=environment_help(DATABASE_VARIABLES),
        formatter_class=raw,
    )
    importer.add_argument("path", help="the legacy SQLite database file")
    importer.set_defaults(handler=_import_sqlite)
    add_logs_parser(commands, raw)
    add_simulate_parser(commands, raw)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # minitwit logs (the log stack's own settings) and simulate (a client) need no app settings
    if not getattr(args, "needs_settings", True):
        standalone: int = args.handler(args)
        return standalone
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"minitwit: configuration error: {exc}", file=sys.stderr)
        return 2
    result: int = args.handler(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
