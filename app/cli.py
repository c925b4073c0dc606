"""The ``minitwit`` command: serve, migrate, import-sqlite.

Configuration comes from the environment only (see the README); the command
line chooses what to do, not how the app is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from app.config import ConfigError, Settings


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from app.server import serve

    serve(settings)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from app.db import migrate

    asyncio.run(migrate(settings))
    print("database schema is up to date")
    return 0


def _import_sqlite(settings: Settings, args: argparse.Namespace) -> int:
    from app import db
    from app.legacy_import import NotALegacyDatabase, import_legacy

    async def run() -> int:
        await db.connect(settings)
        try:
            report = await import_legacy(Path(args.path))
        except NotALegacyDatabase as exc:
            print(f"minitwit import-sqlite: {exc}", file=sys.stderr)
            return 2
        finally:
            await db.close()
        for line in report.lines():
            print(line)
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitwit",
        description="MiniTwit microblog. Configured by environment variables (see README).",
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
    )
    serve.set_defaults(handler=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="bring the database schema up to date",
        description="Apply pending schema migrations to $DATABASE_URL. Never drops data.",
    )
    migrate.set_defaults(handler=_migrate)
    importer = commands.add_parser(
        "import-sqlite",
        help="import a legacy ITU-MiniTwit SQLite database",
        description=(
            "Import users (with their password hashes), follows and messages from a "
            "legacy ITU-MiniTwit SQLite file into $DATABASE_URL. Idempotent; prints counts."
        ),
    )
    importer.add_argument("path", help="the legacy SQLite database file")
    importer.set_defaults(handler=_import_sqlite)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"minitwit: configuration error: {exc}", file=sys.stderr)
        return 2
    result: int = args.handler(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
