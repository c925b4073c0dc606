"""``minitwit logs search``: turn a developer's filters into one elasticsearch-dsl query.

``build_search`` is pure (no connection), so what a filter means is unit-tested;
``run`` executes the query and ``format_event`` prints a hit readably. Field
names are the app's own (``app.observability.logs.FIELDS``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch_dsl import Q, Search
from elasticsearch_dsl.query import Query

from app.logsearch.mappings import INDEX_PATTERN

LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_ALIASES = {"warn": "warning", "fatal": "critical", "err": "error"}
DEFAULT_SINCE = "24h"
MAX_LIMIT = 10_000  # Elasticsearch's default index.max_result_window
# Searched by words; everything else is matched exactly.
TEXT_FIELDS = ("message", "error.message", "error.stack_trace")

_RELATIVE = re.compile(r"(\d+)([smhdw])")
_STATUS_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)
_STATUS_RANGE = re.compile(r"(\d{3})-(\d{3})")
_STATUS = re.compile(r"\d{3}")


class QueryError(ValueError):
    """A filter that cannot mean anything (a bad level, status or time)."""


@dataclass(frozen=True)
class LogQuery:
    """What a developer asked for; every filter given must match (AND)."""

    text: str | None = None
    levels: tuple[str, ...] = ()
    min_level: str | None = None
    routes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    user: str | None = None
    request_id: str | None = None
    actions: tuple[str, ...] = ()
    surface: str | None = None
    since: str | None = DEFAULT_SINCE
    until: str | None = None
    limit: int = 50


def level_name(raw: str) -> str:
    name = LEVEL_ALIASES.get(raw.lower(), raw.lower())
    if name not in LEVELS:
        raise QueryError(f"unknown level {raw!r}: use one of {', '.join(LEVELS)}")
    return name


def status_query(spec: str) -> Query:
    """``500`` exactly, ``5xx`` a class, ``400-499`` a range (inclusive)."""
    spec = spec.strip()
    if _STATUS.fullmatch(spec):
        return Q("term", **{"http.response.status_code": int(spec)})
    if match := _STATUS_CLASS.fullmatch(spec):
        low = int(match.group(1)) * 100
        return Q("range", **{"http.response.status_code": {"gte": low, "lte": low + 99}})
    if match := _STATUS_RANGE.fullmatch(spec):
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise QueryError(f"status range {spec!r} runs backwards")
        return Q("range", **{"http.response.status_code": {"gte": low, "lte": high}})
    raise QueryError(f"status {spec!r}: use a code (404), a class (5xx) or a range (400-499)")


def time_bound(spec: str) -> str:
    """``15m``/``2h``/``7d``/``1w`` ago as date math, ``now``, or an ISO date/datetime as given."""
    spec = spec.strip()
    if spec == "now":
        return "now"
    if match := _RELATIVE.fullmatch(spec):
        return f"now-{match.group(1)}{match.group(2)}"
    try:
        moment = dt.datetime.fromisoformat(spec.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"time {spec!r}: use a duration ago (30s, 15m, 2h, 7d, 1w) or an ISO date/time"
        ) from None
    if moment.tzinfo is None:  # the logs are in UTC; so is a time given without a zone
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def _any_of(queries: Iterable[Query]) -> Query:
    alternatives = list(queries)
    if len(alternatives) == 1:
        return alternatives[0]
    return Q("bool", should=alternatives, minimum_should_match=1)


def _route_query(route: str) -> Query:
    """A route template (``/msgs/<path:username>``) or a concrete path (``/msgs/alice``)."""
    if "<" in route:
        return Q("term", **{"http.route": route})
    return _any_of([Q("term", **{"http.route": route}), Q("term", **{"url.path": route})])


def build_search(query: LogQuery, index: str = INDEX_PATTERN) -> Search:
    """The elasticsearch-dsl search for ``query``: filters, newest first, at most ``limit``."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {query.limit}")
    search = Search(index=index)
    if query.levels:
        search = search.filter("terms", **{"log.level": [level_name(x) for x in query.levels]})
    if query.min_level:
        floor = LEVELS.index(level_name(query.min_level))
        search = search.filter("terms", **{"log.level": list(LEVELS[floor:])})
    if query.routes:
        search = search.filter(_any_of(_route_query(route) for route in query.routes))
    if query.statuses:
        search = search.filter(_any_of(status_query(status) for status in query.statuses))
    if query.user:
        # The acting user, or the user an event is about (an unknown user, a follow target).
        search = search.filter(
            _any_of(
                [
                    Q("term", **{"user.name": query.user}),
                    Q("term", **{"user.target.name": query.user}),
                ]
            )
        )
    if query.request_id:
        search = search.filter("term", **{"http.request.id": query.request_id})
    if query.actions:
        search = search.filter("terms", **{"event.action": list(query.actions)})
    if query.surface:
        search = search.filter("term", **{"labels.app": query.surface})
    if query.text:
        search = search.query(
            "simple_query_string",
            query=query.text,
            fields=list(TEXT_FIELDS),
            default_operator="and",
        )
    window: dict[str, str] = {}
    if query.since:
        window["gte"] = time_bound(query.since)
    if query.until:
        window["lte"] = time_bound(query.until)
    if window:
        search = search.filter("range", **{"@timestamp": window})
    return search.sort({"@timestamp": {"order": "desc"}}).extra(
        size=query.limit, track_total_hits=True
    )


def describe(search: Search) -> str:
    """The request as Elasticsearch receives it, to show with the results."""
    index = ",".join(search._index or [INDEX_PATTERN])
    return f"GET {index}/_search {json.dumps(search.to_dict(), sort_keys=True)}"


def _get(source: Mapping[str, Any], dotted: str) -> Any:
    node: Any = source
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return source.get(dotted)  # a document that kept a dotted key
        node = node[part]
    return node


# Shown after the message when present, in this order.
DETAIL_FIELDS = (
    ("event.action", "action"),
    ("http.request.id", "request"),
    ("user.name", "user"),
    ("user.target.name", "target"),
    ("error.type", "error"),
)


def format_event(source: Mapping[str, Any]) -> str:
    """One readable line (plus the stack trace, indented, when there is one)."""
    level = str(_get(source, "log.level") or "?").upper()
    surface = _get(source, "labels.app")
    parts = [str(source.get("@timestamp", "?")), f"{level:<8}"]
    if surface:
        parts.append(f"[{surface}]")
    parts.append(str(source.get("message", "")))
    details = [
        f"{label}={value}"
        for field, label in DETAIL_FIELDS
        if (value := _get(source, field)) not in (None, "")
    ]
    line = " ".join(parts)
    if details:
        line += "  (" + ", ".join(details) + ")"
    stack = _get(source, "error.stack_trace")
    if stack:
        line += "\n" + "\n".join(f"    {row}" for row in str(stack).rstrip().splitlines())
    return line


@dataclass(frozen=True)
class Results:
    events: Sequence[Mapping[str, Any]]  # oldest first
    total: int
    total_is_exact: bool


def run(search: Search, client: Any) -> Results:
    response = search.using(client).execute()
    total = response.hits.total
    events = [hit.to_dict() for hit in response.hits]
    events.reverse()  # fetched newest first; read like a log, oldest first
    return Results(events, int(total.value), total.relation == "eq")
