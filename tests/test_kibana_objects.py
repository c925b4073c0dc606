"""Kibana's saved objects (kibana/*.ndjson): they parse, and they only name real fields.

A saved search on a field the logs do not carry finds nothing, silently. Here
every field a search queries, shows or sorts by must be one the app writes
(FIELDS) and the index template maps, and each search is run, with a small
evaluator for the KQL subset the searches use, against log lines the real app
wrote: it must find them, and not everything.
"""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path
from typing import Any

import pytest

from app.logsearch import kibana, mappings
from app.observability.logs import FIELDS
from tests.logdocs import app_log_lines, flatten

KIBANA_DIR = Path(__file__).resolve().parent.parent / "kibana"
REQUIRED_SEARCHES = {
    "minitwit-errors",
    "minitwit-slow-requests",
    "minitwit-5xx",
    "minitwit-users-not-found",
    "minitwit-failed-logins",
    "minitwit-simulator-api",
    "minitwit-one-request",
}


def objects() -> list[dict[str, Any]]:
    found = []
    for path in sorted(KIBANA_DIR.glob("*.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                obj = json.loads(line)
                assert isinstance(obj, dict), f"{path.name}:{number} is not an object"
                found.append(obj)
    return found


def searches() -> list[dict[str, Any]]:
    return [obj for obj in objects() if obj["type"] == "search"]


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = json.loads(
        obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    )
    return source


@pytest.fixture(scope="module")
def mapped() -> dict[str, str]:
    body = mappings.index_template_body()
    return mappings.mapped_types(body["template"]["mappings"]["properties"])


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return [flatten(line) for line in app_log_lines(tmp_path_factory.mktemp("kibana"))]


def test_the_committed_ndjson_is_the_rendering_of_app_logsearch_kibana() -> None:
    assert kibana.NDJSON_PATH.read_text(encoding="utf-8") == kibana.render(), (
        "kibana/minitwit-logs.ndjson is stale: run python -m app.logsearch.kibana"
    )


def test_every_line_is_a_saved_object_kibana_can_import() -> None:
    found = objects()
    ids = [(obj["type"], obj["id"]) for obj in found]
    assert len(ids) == len(set(ids)), "duplicate saved object ids"
    for obj in found:
        assert obj["type"] in {"index-pattern", "search"}
        assert {"id", "type", "attributes", "references"} <= set(obj)
        assert obj["attributes"]["title"]
        assert set(obj.get("migrationVersion", {})) <= {obj["type"]}


def test_the_data_view_is_the_data_stream_with_its_time_field(mapped: dict[str, str]) -> None:
    views = [obj for obj in objects() if obj["type"] == "index-pattern"]
    assert len(views) == 1
    attributes = views[0]["attributes"]
    assert attributes["title"] == mappings.INDEX_PATTERN
    assert mapped[attributes["timeFieldName"]] == "date"


def test_the_required_saved_searches_exist() -> None:
    assert {obj["id"] for obj in searches()} >= REQUIRED_SEARCHES


def test_each_search_uses_the_data_view_in_this_file() -> None:
    view_ids = {obj["id"] for obj in objects() if obj["type"] == "index-pattern"}
    for obj in searches():
        source = search_source(obj)
        refs = {ref["name"]: ref for ref in obj["references"]}
        ref = refs[source["indexRefName"]]
        assert ref["type"] == "index-pattern"
        assert ref["id"] in view_ids, obj["id"]
        assert source["query"]["language"] == "kuery"
        assert source["filter"] == []


# --- the fields ------------------------------------------------------------------------

COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_CLAUSE = re.compile(r"^\s*([\w@.]+)\s*(:|>=|<=|>|<)\s*(.+?)\s*$")


def kql_clauses(query: str) -> list[tuple[str, str, list[Any]]]:
    """``a : "x" and b >= 500 and c : ("y" or "z") and d : *`` -> [(field, op, values)].

    Only the KQL the saved searches use: clauses joined by ``and``; a clause is
    ``field : "value"``, ``field : ("a" or "b")``, ``field : *`` or a comparison.
    Anything else fails the test rather than being misread.
    """
    clauses = []
    for part in re.split(r"\s+and\s+", query.strip()):
        match = _CLAUSE.match(part)
        assert match, f"unsupported KQL clause {part!r} in {query!r}"
        field, op, raw = match.groups()
        if op == ":" and raw == "*":
            values: list[Any] = ["*"]
        elif op == ":":
            inner = raw[1:-1] if raw.startswith("(") and raw.endswith(")") else raw
            quoted = [json.loads(token) for token in _QUOTED.findall(inner)]
            rest = re.sub(r"\s+or\s+", "", _QUOTED.sub("", inner)).strip()
            assert quoted, f"unsupported KQL value {raw!r}"
            assert not rest, f"unsupported KQL value {raw!r}"
            values = quoted
        else:
            values = [float(raw)]
        clauses.append((field, op, values))
    return clauses


def matches(event: dict[str, Any], clauses: list[tuple[str, str, list[Any]]]) -> bool:
    for field, op, values in clauses:
        if field not in event:
            return False
        value = event[field]
        if op == ":" and values != ["*"] and value not in values:
            return False
        if op in COMPARISONS and not COMPARISONS[op](value, values[0]):
            return False
    return True


@pytest.mark.parametrize("obj", searches(), ids=lambda obj: obj["id"])
def test_every_field_a_search_queries_shows_or_sorts_by_is_written_and_mapped(
    obj: dict[str, Any], mapped: dict[str, str]
) -> None:
    attributes = obj["attributes"]
    fields = {field for field, _, _ in kql_clauses(search_source(obj)["query"]["query"])}
    fields |= set(attributes["columns"])
    fields |= {field for field, _direction in attributes["sort"]}
    for field in fields:
        assert field in FIELDS, f"{obj['id']}: the app does not write {field}"
        assert field in mapped, f"{obj['id']}: the index template does not map {field}"
    for field, op, _ in kql_clauses(search_source(obj)["query"]["query"]):
        if op == ":":  # exact matches only make sense on keywords (text is analysed)
            assert mapped[field] == "keyword", (obj["id"], field)
        else:
            assert mapped[field] in {"long", "date"}, (obj["id"], field)


@pytest.mark.parametrize("obj", searches(), ids=lambda obj: obj["id"])
def test_every_search_finds_what_the_app_logs(
    obj: dict[str, Any], emitted: list[dict[str, Any]]
) -> None:
    clauses = kql_clauses(search_source(obj)["query"]["query"])
    found = [event for event in emitted if matches(event, clauses)]
    assert found, f"{obj['id']} finds none of the app's events"
    if obj["id"] != "minitwit-one-request":  # that one lists everything with an id
        assert len(found) < len(emitted), f"{obj['id']} finds everything"


def test_the_searches_find_the_right_events(emitted: list[dict[str, Any]]) -> None:
    def found(search_id: str) -> list[dict[str, Any]]:
        obj = next(obj for obj in searches() if obj["id"] == search_id)
        clauses = kql_clauses(search_source(obj)["query"]["query"])
        return [event for event in emitted if matches(event, clauses)]

    assert {e["error.type"] for e in found("minitwit-errors")} == {"RuntimeError"}
    assert all(e["http.response.status_code"] >= 500 for e in found("minitwit-5xx"))
    assert {e["user.target.name"] for e in found("minitwit-users-not-found")} == {"ghost"}
    assert {e["user.name"] for e in found("minitwit-failed-logins")} == {"carol"}
    assert all(e["log.level"] == "warning" for e in found("minitwit-slow-requests"))
    assert {e["labels.app"] for e in found("minitwit-simulator-api")} == {"api"}
