"""``minitwit logs setup`` and ``minitwit logs search``, wired into ``app.cli``.

Only argparse is imported at module level: ``minitwit serve`` builds the same
parser and must not pay for loading the Elasticsearch client.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.config import ConfigError

SEARCH_EXAMPLES = """examples:
  minitwit logs search --level error --since 1h
  minitwit logs search --status 5xx --surface api
  minitwit logs search --request-id 3de02d923bdf4ab89d0c46de7fadc7e8 --since 7d
  minitwit logs search --user alice --route /msgs/alice
  minitwit logs search --action user-not-found --json
  minitwit logs search 'database unavailable' --since 2026-11-24T10:00 --until 2026-11-24T11:00
"""


def _environment_help() -> str:
    from app.logsearch.settings import VARIABLES

    lines = [
        f"  {name} (default: {default})\n      {meaning}" for name, default, meaning in VARIABLES
    ]
    return "\n".join(["environment variables:", *lines])


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"minitwit logs {command}: {message}", file=sys.stderr)
    return code


def _settings() -> Any:
    from app.logsearch.settings import LogStackSettings

    return LogStackSettings.from_env()


def _setup(args: argparse.Namespace) -> int:
    from app.logsearch import setup
    from app.logsearch.client import (
        ELASTICSEARCH_ERRORS,
        LogStackError,
        elasticsearch_client,
        explain,
    )

    try:
        settings = _settings()
    except ConfigError as exc:
        return _fail("setup", f"configuration error: {exc}", 2)
    try:
        if not args.kibana_only:
            client = elasticsearch_client(settings)
            try:
                setup.apply_elasticsearch(client, settings.retention_days, print)
            except ELASTICSEARCH_ERRORS as exc:
                return _fail("setup", explain(exc, settings))
        if not args.skip_kibana:
            setup.apply_kibana(settings, print)
    except LogStackError as exc:
        return _fail("setup", str(exc))
    return 0


def _search(args: argparse.Namespace) -> int:
    from app.logsearch import search as logsearch
    from app.logsearch.client import (
        ELASTICSEARCH_ERRORS,
        LogStackError,
        elasticsearch_client,
        explain,
    )

    try:
        settings = _settings()
    except ConfigError as exc:
        return _fail("search", f"configuration error: {exc}", 2)
    query = logsearch.LogQuery(
        text=" ".join(args.text) or None,
        levels=tuple(_split(args.level)),
        min_level=args.min_level,
        routes=tuple(args.route),
        statuses=tuple(_split(args.status)),
        user=args.user,
        request_id=args.request_id,
        actions=tuple(_split(args.action)),
        surface=args.surface,
        since=None if args.since == "all" else args.since,
        until=args.until,
        limit=args.limit,
    )
    try:
        built = logsearch.build_search(query)
    except logsearch.QueryError as exc:
        return _fail("search", str(exc), 2)
    described = logsearch.describe(built)
    # With --json, stdout is only events (one JSON object a line); the query goes to stderr.
    print(f"query: {described}", file=sys.stderr if args.json else sys.stdout, flush=True)
    try:
        results = logsearch.run(built, elasticsearch_client(settings))
    except ELASTICSEARCH_ERRORS as exc:
        return _fail("search", explain(exc, settings))
    except LogStackError as exc:
        return _fail("search", str(exc))
    for event in results.events:
        if args.json:
            print(json.dumps(event, ensure_ascii=False, sort_keys=True))
        else:
            print(logsearch.format_event(event))
    shown = len(results.events)
    total = f"{results.total}" if results.total_is_exact else f"at least {results.total}"
    summary = f"{shown} of {total} matching events shown (oldest first)"
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return 0


def _split(values: list[str]) -> list[str]:
    """``--level error,warning --level info`` -> ``["error", "warning", "info"]``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def add_logs_parser(commands: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add ``logs`` (with ``setup`` and ``search``) to the ``minitwit`` subcommands."""
    logs = commands.add_parser(
        "logs",
        help="set up the log stack, search the logs",
        description=(
            "The app writes one ECS JSON object per log line; Filebeat and Logstash ship them "
            "to the Elasticsearch data stream logs-minitwit-default. These commands set that "
            "data stream up and search it."
        ),
        epilog=_environment_help(),
        formatter_class=formatter_class,
    )
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")

    setup = actions.add_parser(
        "setup",
        help="apply the ILM policy, index template and Kibana saved searches (idempotent)",
        description=(
            "Apply the ILM policy (rollover, deletion after $LOG_RETENTION_DAYS days), the "
            "index template for logs-minitwit-* and the data stream to $ELASTICSEARCH_URL, "
            "then import kibana/*.ndjson (data view and saved searches) into $KIBANA_URL. "
            "Safe to run again: it replaces what it manages and nothing else."
        ),
        epilog=_environment_help(),
        formatter_class=formatter_class,
    )
    only = setup.add_mutually_exclusive_group()
    only.add_argument("--skip-kibana", action="store_true", help="only set up Elasticsearch")
    only.add_argument(
        "--kibana-only", action="store_true", help="only import the Kibana saved objects"
    )
    setup.set_defaults(handler=_setup, needs_settings=False)

    search = actions.add_parser(
        "search",
        help="search the logs by level, route, status, user, request id, text and time",
        description=(
            "Search the app's logs in $ELASTICSEARCH_URL. Every filter given must match. "
            "Prints the query it ran, then the matching events oldest first (the newest "
            "--limit of them), one readable line each, or JSON lines with --json."
        ),
        epilog=SEARCH_EXAMPLES + "\n" + _environment_help(),
        formatter_class=formatter_class,
    )
    search.add_argument("text", nargs="*", help="words to find in the message or error")
    search.add_argument(
        "--level",
        action="append",
        default=[],
        metavar="LEVEL",
        help="exactly these levels (debug, info, warning, error, critical); repeatable",
    )
    search.add_argument("--min-level", metavar="LEVEL", help="this level and more severe ones")
    search.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="ROUTE",
        help="a route template (/msgs/<path:username>) or a path (/msgs/alice); repeatable",
    )
    search.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="HTTP status: a code (404), a class (5xx) or a range (400-499); repeatable",
    )
    search.add_argument("--user", help="events by or about this user")
    search.add_argument("--request-id", help="every line of one request (its X-Request-ID)")
    search.add_argument(
        "--action",
        action="append",
        default=[],
        metavar="ACTION",
        help="event.action, e.g. slow-request, user-not-found, user-login-failed",
    )
    search.add_argument("--surface", choices=["web", "api"], help="only the web UI or the API")
    search.add_argument(
        "--since",
        default="24h",
        help="start: a duration ago (30s, 15m, 2h, 7d, 1w), an ISO time, or 'all' (default: 24h)",
    )
    search.add_argument("--until", help="end: a duration ago or an ISO time (default: now)")
    search.add_argument(
        "--limit", type=int, default=50, help="show at most this many events (default: 50)"
    )
    search.add_argument(
        "--json", action="store_true", help="print events as JSON lines (query on stderr)"
    )
    search.set_defaults(handler=_search, needs_settings=False)
