"""The Kibana saved objects for the logs: one data view and the saved searches.

Defined here once and rendered to ``kibana/minitwit-logs.ndjson``, the file
``minitwit logs setup`` imports (Kibana's saved objects import API) and a
person can import by hand (Stack Management > Saved objects > Import). A test
checks the committed file is this rendering, and that every field a search
queries or shows is one the app writes and the index template maps.

Regenerate after editing: ``python -m app.logsearch.kibana``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.logsearch.mappings import INDEX_PATTERN

DATA_VIEW_ID = "minitwit-logs"
NDJSON_PATH = Path(__file__).resolve().parents[2] / "kibana" / "minitwit-logs.ndjson"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
# The oldest version these objects' shape is valid for; Kibana migrates them forward.
# (``migrationVersion`` rather than 8.8's ``typeMigrationVersion``: every 8.x reads it.)
MIGRATION_VERSION = "8.0.0"


@dataclass(frozen=True)
class SavedSearch:
    id: str
    title: str
    description: str
    query: str  # KQL
    columns: tuple[str, ...]
    oldest_first: bool = False


SAVED_SEARCHES: tuple[SavedSearch, ...] = (
    SavedSearch(
        "minitwit-errors",
        "MiniTwit: errors",
        "Every error logged, with its type and the request it happened in. "
        "Open one for error.stack_trace.",
        'log.level : ("error" or "critical")',
        (
            "log.level",
            "labels.app",
            "event.action",
            "error.type",
            "error.message",
            "http.request.id",
        ),
    ),
    SavedSearch(
        "minitwit-slow-requests",
        "MiniTwit: slow requests",
        "Requests slower than MINITWIT_SLOW_REQUEST_SECONDS (0.3 s by default, the simulator's "
        "timeout). event.duration is in nanoseconds.",
        'event.action : "slow-request"',
        (
            "labels.app",
            "http.request.method",
            "http.route",
            "http.response.status_code",
            "event.duration",
            "http.request.id",
        ),
    ),
    SavedSearch(
        "minitwit-5xx",
        "MiniTwit: 5xx responses",
        "Responses with a server error status, on both surfaces.",
        'event.dataset : "minitwit.access" and http.response.status_code >= 500',
        (
            "labels.app",
            "http.request.method",
            "url.path",
            "http.response.status_code",
            "event.duration",
            "http.request.id",
        ),
    ),
    SavedSearch(
        "minitwit-users-not-found",
        "MiniTwit: users not found (simulator)",
        "The simulator acting as, or asking about, a user who does not exist (a 404 on the API): "
        "user.target.name is the name it used.",
        'event.action : "user-not-found" and labels.app : "api"',
        ("user.target.name", "http.request.id"),
    ),
    SavedSearch(
        "minitwit-failed-logins",
        "MiniTwit: failed logins",
        "Web sign-ins that failed (unknown user or wrong password), by user name.",
        'event.action : "user-login-failed"',
        ("user.name", "event.outcome", "http.request.id"),
    ),
    SavedSearch(
        "minitwit-simulator-api",
        "MiniTwit: simulator API traffic",
        "Every request the simulator API answered (port 5001, or /api on the web port).",
        'event.dataset : "minitwit.access" and labels.app : "api"',
        (
            "http.request.method",
            "http.route",
            "http.response.status_code",
            "event.duration",
            "user.name",
            "http.request.id",
        ),
    ),
    SavedSearch(
        "minitwit-one-request",
        "MiniTwit: one request (by id)",
        "Every line of one request, in order. Replace * with the request id: the X-Request-ID "
        "response header, or http.request.id of any of its lines.",
        "http.request.id : *",
        ("log.level", "event.action", "log.logger", "http.route", "user.name"),
        oldest_first=True,
    ),
)


def data_view() -> dict[str, Any]:
    return {
        "id": DATA_VIEW_ID,
        "type": "index-pattern",
        "attributes": {
            "title": INDEX_PATTERN,
            "name": "MiniTwit logs",
            "timeFieldName": "@timestamp",
        },
        "references": [],
        "coreMigrationVersion": MIGRATION_VERSION,
        "migrationVersion": {"index-pattern": MIGRATION_VERSION},
    }


def saved_search(search: SavedSearch) -> dict[str, Any]:
    source = {
        "query": {"query": search.query, "language": "kuery"},
        "filter": [],
        "indexRefName": INDEX_REF,
    }
    return {
        "id": search.id,
        "type": "search",
        "attributes": {
            "title": search.title,
            "description": search.description,
            "columns": list(search.columns),
            "sort": [["@timestamp", "asc" if search.oldest_first else "desc"]],
            "grid": {},
            "hideChart": False,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
        "coreMigrationVersion": MIGRATION_VERSION,
        "migrationVersion": {"search": MIGRATION_VERSION},
    }


def render() -> str:
    objects = [data_view(), *(saved_search(search) for search in SAVED_SEARCHES)]
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objects)


if __name__ == "__main__":
    NDJSON_PATH.parent.mkdir(exist_ok=True)
    NDJSON_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {NDJSON_PATH}")
