"""``minitwit logs search`` and ``minitwit logs setup``.

The query building is unit-tested (no connection). The command itself runs
as a subprocess, as a developer runs it. There is no Elasticsearch here, so:

- "unreachable" is a real free loopback port with nothing listening;
- "wrong credentials", "what the command sends and prints" and "setup's
  requests" use ``StandIn``, a tiny HTTP server in the test that answers the
  way Elasticsearch (or Kibana) does for those requests. It is a stand-in for
  an unavailable component: these tests show what the command sends and how
  it handles the answers, not that a real cluster accepts the requests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.logsearch import mappings, search
from app.logsearch.kibana import DATA_VIEW_ID
from app.logsearch.search import LogQuery, QueryError, build_search
from tests import postgres
from tests.processes import run_minitwit

# --- the query ------------------------------------------------------------------------


def filters(query: LogQuery) -> list[dict[str, Any]]:
    body = build_search(query).to_dict()
    found: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return found


def test_defaults_are_the_last_day_newest_first_fifty_events() -> None:
    body = build_search(LogQuery()).to_dict()
    assert body["query"] == {"bool": {"filter": [{"range": {"@timestamp": {"gte": "now-24h"}}}]}}
    assert body["sort"] == [{"@timestamp": {"order": "desc"}}]
    assert body["size"] == 50
    assert body["track_total_hits"] is True
    assert build_search(LogQuery())._index == [mappings.INDEX_PATTERN]


def test_levels_exact_and_at_least() -> None:
    assert {"terms": {"log.level": ["error", "warning"]}} in filters(
        LogQuery(levels=("ERROR", "warn"), since=None)
    )
    assert filters(LogQuery(min_level="warning", since=None)) == [
        {"terms": {"log.level": ["warning", "error", "critical"]}}
    ]
    with pytest.raises(QueryError, match="unknown level 'loud'"):
        build_search(LogQuery(levels=("loud",)))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("404", {"term": {"http.response.status_code": 404}}),
        ("5xx", {"range": {"http.response.status_code": {"gte": 500, "lte": 599}}}),
        ("4XX", {"range": {"http.response.status_code": {"gte": 400, "lte": 499}}}),
        ("400-403", {"range": {"http.response.status_code": {"gte": 400, "lte": 403}}}),
    ],
)
def test_status_codes_classes_and_ranges(spec: str, expected: dict[str, Any]) -> None:
    assert filters(LogQuery(statuses=(spec,), since=None)) == [expected]


def test_several_statuses_are_alternatives() -> None:
    (only,) = filters(LogQuery(statuses=("404", "5xx"), since=None))
    assert only["bool"]["minimum_should_match"] == 1
    assert len(only["bool"]["should"]) == 2


@pytest.mark.parametrize("spec", ["6xx", "20", "abc", "500-400"])
def test_a_bad_status_is_a_query_error(spec: str) -> None:
    with pytest.raises(QueryError):
        build_search(LogQuery(statuses=(spec,)))


def test_route_template_or_concrete_path() -> None:
    assert filters(LogQuery(routes=("/msgs/<path:username>",), since=None)) == [
        {"term": {"http.route": "/msgs/<path:username>"}}
    ]
    (path,) = filters(LogQuery(routes=("/msgs/alice",), since=None))
    assert path["bool"]["should"] == [
        {"term": {"http.route": "/msgs/alice"}},
        {"term": {"url.path": "/msgs/alice"}},
    ]


def test_user_matches_the_acting_user_or_the_one_an_event_is_about() -> None:
    (user,) = filters(LogQuery(user="alice", since=None))
    assert user["bool"]["should"] == [
        {"term": {"user.name": "alice"}},
        {"term": {"user.target.name": "alice"}},
    ]


def test_request_id_action_and_surface_are_exact() -> None:
    assert filters(
        LogQuery(request_id="abc-123", actions=("slow-request",), surface="api", since=None)
    ) == [
        {"term": {"http.request.id": "abc-123"}},
        {"terms": {"event.action": ["slow-request"]}},
        {"term": {"labels.app": "api"}},
    ]


def test_free_text_searches_the_message_and_the_error() -> None:
    body = build_search(LogQuery(text="database timeout", since="1h")).to_dict()
    assert body["query"]["bool"]["must"] == [
        {
            "simple_query_string": {
                "query": "database timeout",
                "fields": ["message", "error.message", "error.stack_trace"],
                "default_operator": "and",
            }
        }
    ]
    assert body["query"]["bool"]["filter"] == [{"range": {"@timestamp": {"gte": "now-1h"}}}]


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("15m", None, {"gte": "now-15m"}),
        ("2h", "30m", {"gte": "now-2h", "lte": "now-30m"}),
        ("1w", "now", {"gte": "now-1w", "lte": "now"}),
        ("2026-11-24T10:00", None, {"gte": "2026-11-24T10:00:00+00:00"}),
        ("2026-11-24T10:00:00Z", None, {"gte": "2026-11-24T10:00:00+00:00"}),
        ("2026-11-24T12:00:00+02:00", None, {"gte": "2026-11-24T12:00:00+02:00"}),
        ("2026-11-24", None, {"gte": "2026-11-24T00:00:00+00:00"}),
    ],
)
def test_time_range(since: str, until: str | None, expected: dict[str, str]) -> None:
    assert filters(LogQuery(since=since, until=until)) == [{"range": {"@timestamp": expected}}]


@pytest.mark.parametrize("spec", ["yesterday", "15 minutes", "-5m", "2026-13-01"])
def test_a_bad_time_is_a_query_error(spec: str) -> None:
    with pytest.raises(QueryError, match="time"):
        build_search(LogQuery(since=spec))


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_the_limit_is_bounded(limit: int) -> None:
    with pytest.raises(QueryError, match="limit"):
        build_search(LogQuery(limit=limit))


def test_every_filter_at_once_is_one_conjunction() -> None:
    query = LogQuery(
        text="boom",
        levels=("error",),
        routes=("/<username>",),
        statuses=("500",),
        user="alice",
        request_id="r1",
        actions=("internal-error",),
        surface="web",
        since="1h",
    )
    body = build_search(query).to_dict()
    assert len(body["query"]["bool"]["filter"]) == 8
    described = search.describe(build_search(query))
    assert described.startswith(f"GET {mappings.INDEX_PATTERN}/_search {{")
    assert json.loads(described.split(" ", 2)[2]) == body


def test_an_event_prints_as_one_readable_line_with_its_stack_trace() -> None:
    event = {
        "@timestamp": "2026-11-24T16:59:46.131Z",
        "log.level": "error",
        "message": "unhandled error: RuntimeError",
        "labels": {"app": "web"},
        "event": {"action": "internal-error"},
        "http": {"request": {"id": "abc-123"}},
        "user": {"name": "alice"},
        "error": {"type": "RuntimeError", "stack_trace": 'File "x.py", line 1\n  boom()\n'},
    }
    text = search.format_event(event)
    first, *stack = text.splitlines()
    assert first == (
        "2026-11-24T16:59:46.131Z ERROR    [web] unhandled error: RuntimeError  "
        "(action=internal-error, request=abc-123, user=alice, error=RuntimeError)"
    )
    assert stack == ['    File "x.py", line 1', "      boom()"]


# --- the command ------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, Any]


@dataclass
class StandIn:
    """A real HTTP server in the test answering like Elasticsearch/Kibana for a few requests."""

    answer: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stand_in() -> Iterator[Callable[[Callable[[Seen], Answer]], StandIn]]:
    started: list[StandIn] = []

    def start(answer: Callable[[Seen], Answer]) -> StandIn:
        stand = StandIn(answer)

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                stand.seen.append(seen)
                status, body = stand.answer(seen)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Elastic-Product", "Elasticsearch")
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="security" charset="UTF-8"')
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

            def log_message(self, *_args: Any) -> None:
                pass

        stand.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=stand.server.serve_forever, daemon=True).start()
        started.append(stand)
        return stand

    yield start
    for stand in started:
        assert stand.server is not None
        stand.server.shutdown()
        stand.server.server_close()


UNAUTHORIZED = {
    "error": {
        "root_cause": [
            {
                "type": "security_exception",
                "reason": "unable to authenticate user [elastic] for REST request [/_search]",
                "header": {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'},
            }
        ],
        "type": "security_exception",
        "reason": "unable to authenticate user [elastic] for REST request [/_search]",
        "header": {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'},
    },
    "status": 401,
}


def assert_clear_failure(result: Any, command: str, *expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"minitwit logs {command}: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in expected:
        assert text in result.stderr


@pytest.mark.parametrize("args", [["logs"], ["logs", "search"], ["logs", "setup"]])
def test_help(args: list[str]) -> None:
    result = run_minitwit(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: minitwit {' '.join(args)}")
    for variable in ("ELASTICSEARCH_URL", "ELASTICSEARCH_PASSWORD", "LOG_RETENTION_DAYS"):
        assert variable in result.stdout


def test_logs_needs_an_action() -> None:
    result = run_minitwit("logs")
    assert result.returncode == 2
    assert "usage: minitwit logs" in result.stderr


def test_logs_commands_ignore_the_app_settings() -> None:
    """A developer's laptop need not hold a valid server configuration to search logs."""
    result = run_minitwit(
        "logs", "search", "--since", "nonsense", MINITWIT_ENV="production", MINITWIT_WORKERS="x"
    )
    assert result.returncode == 2
    assert "minitwit logs search: time 'nonsense'" in result.stderr
    assert "configuration error" not in result.stderr


def test_search_against_an_unreachable_elasticsearch_is_a_clear_error() -> None:
    port = postgres.free_port()  # nothing listens there: connection refused
    url = f"http://127.0.0.1:{port}"
    result = run_minitwit("logs", "search", "--level", "error", ELASTICSEARCH_URL=url)
    assert_clear_failure(
        result, "search", f"cannot reach Elasticsearch at {url}", "ELASTICSEARCH_URL"
    )
    assert result.stdout.startswith("query: GET logs-minitwit-*/_search {")  # what it tried


def test_setup_against_an_unreachable_elasticsearch_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{postgres.free_port()}"
    result = run_minitwit("logs", "setup", ELASTICSEARCH_URL=url)
    assert_clear_failure(result, "setup", f"cannot reach Elasticsearch at {url}")


def test_setup_against_an_unreachable_kibana_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{postgres.free_port()}"
    result = run_minitwit("logs", "setup", "--kibana-only", KIBANA_URL=url)
    assert_clear_failure(result, "setup", f"cannot reach Kibana at {url}", "KIBANA_URL")


def test_wrong_credentials_are_a_clear_error(stand_in: Any) -> None:
    es = stand_in(lambda seen: (401, UNAUTHORIZED))
    result = run_minitwit(
        "logs", "search", ELASTICSEARCH_URL=es.url, ELASTICSEARCH_PASSWORD="not-it"
    )
    assert_clear_failure(
        result,
        "search",
        "rejected the credentials of user 'elastic' (401)",
        "ELASTICSEARCH_PASSWORD",
    )
    assert "not-it" not in result.stderr + result.stdout
    sent = es.seen[0].headers["authorization"]
    assert sent.startswith("Basic ")  # the credentials were offered, and refused


def test_missing_credentials_say_which_variable_to_set(stand_in: Any) -> None:
    es = stand_in(lambda seen: (401, UNAUTHORIZED))
    result = run_minitwit("logs", "setup", "--skip-kibana", ELASTICSEARCH_URL=es.url)
    assert_clear_failure(result, "setup", "wants credentials (401)", "ELASTICSEARCH_PASSWORD")


def test_the_username_and_elastic_password_spellings_are_used(stand_in: Any) -> None:
    es = stand_in(lambda seen: (401, UNAUTHORIZED))
    result = run_minitwit(
        "logs", "search", ELASTICSEARCH_URL=es.url, ELASTIC_USERNAME="dev", ELASTIC_PASSWORD="pw"
    )
    assert "user 'dev'" in result.stderr
    assert es.seen[0].headers["authorization"] == "Basic ZGV2OnB3"  # dev:pw


def hit(source: dict[str, Any]) -> dict[str, Any]:
    return {"_index": ".ds-logs-minitwit-default-2026.11.24-000001", "_id": "x", "_source": source}


EVENTS = [  # newest first, as the query asks
    {
        "@timestamp": "2026-11-24T16:59:46.131Z",
        "log": {"level": "info", "logger": "minitwit.access"},
        "message": "POST /login -> 302 in 56.3 ms",
        "http": {"request": {"id": "abc-123"}},
        "labels": {"app": "web"},
    },
    {
        "@timestamp": "2026-11-24T16:59:46.126Z",
        "log": {"level": "info", "logger": "minitwit.events"},
        "message": "sign-in succeeded for 'carol'",
        "event": {"action": "user-login"},
        "http": {"request": {"id": "abc-123"}},
        "user": {"name": "carol"},
    },
]


def search_answer(seen: Seen) -> Answer:
    assert seen.path.startswith("/logs-minitwit-%2A/_search") or seen.path.startswith(
        "/logs-minitwit-*/_search"
    ), seen.path
    return 200, {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 2, "relation": "eq"}, "hits": [hit(e) for e in EVENTS]},
    }


def test_search_sends_the_query_it_prints_and_prints_events_oldest_first(stand_in: Any) -> None:
    es = stand_in(search_answer)
    result = run_minitwit(
        "logs", "search", "--request-id", "abc-123", "--since", "7d", ELASTICSEARCH_URL=es.url
    )
    assert result.returncode == 0, result.stderr
    query_line, first, second, summary = result.stdout.splitlines()
    sent = json.loads(es.seen[-1].body)
    assert json.loads(query_line.split(" ", 3)[3]) == sent
    assert sent == build_search(LogQuery(request_id="abc-123", since="7d")).to_dict()
    assert "sign-in succeeded for 'carol'" in first
    assert "(action=user-login, request=abc-123, user=carol)" in first
    assert "POST /login -> 302" in second
    assert summary == "2 of 2 matching events shown (oldest first)"


def test_search_json_prints_only_events_on_stdout(stand_in: Any) -> None:
    es = stand_in(search_answer)
    result = run_minitwit("logs", "search", "--json", ELASTICSEARCH_URL=es.url)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == list(reversed(EVENTS))
    assert result.stderr.startswith("query: GET logs-minitwit-*/_search")


# --- setup ------------------------------------------------------------------------------


def setup_answer(data_stream_exists: bool) -> Callable[[Seen], Answer]:
    def answer(seen: Seen) -> Answer:
        if seen.path.startswith("/_data_stream/") and data_stream_exists:
            return 400, {
                "error": {
                    "root_cause": [{"type": "resource_already_exists_exception", "reason": "x"}],
                    "type": "resource_already_exists_exception",
                    "reason": "data_stream [logs-minitwit-default] already exists",
                },
                "status": 400,
            }
        if seen.path.startswith("/api/saved_objects/_import"):
            return 200, {"success": True, "successCount": 8, "successResults": []}
        return 200, {"acknowledged": True}

    return answer


@pytest.mark.parametrize("exists", [False, True], ids=["first run", "again"])
def test_setup_puts_policy_template_data_stream_and_imports_kibana(
    stand_in: Any, exists: bool
) -> None:
    stack = stand_in(setup_answer(exists))
    result = run_minitwit(
        "logs",
        "setup",
        ELASTICSEARCH_URL=stack.url,
        KIBANA_URL=stack.url,
        ELASTICSEARCH_PASSWORD="pw",
        LOG_RETENTION_DAYS="30",
    )
    assert result.returncode == 0, result.stderr
    requests = [(seen.method, seen.path.split("?")[0]) for seen in stack.seen]
    expected = [
        ("PUT", "/_ilm/policy/logs-minitwit"),
        ("PUT", "/_index_template/logs-minitwit"),
        ("PUT", "/_data_stream/logs-minitwit-default"),
    ]
    if exists:
        expected.append(("PUT", "/logs-minitwit-default/_mapping"))
    expected.append(("POST", "/api/saved_objects/_import"))
    assert requests == expected
    by_path = {seen.path.split("?")[0]: seen for seen in stack.seen}
    policy = json.loads(by_path["/_ilm/policy/logs-minitwit"].body)["policy"]
    assert policy == mappings.ilm_policy(30)
    template = json.loads(by_path["/_index_template/logs-minitwit"].body)
    assert template == mappings.index_template_body()
    kibana = by_path["/api/saved_objects/_import"]
    assert "overwrite=true" in stack.seen[-1].path
    assert kibana.headers["kbn-xsrf"] == "true"
    assert kibana.headers["authorization"] == "Basic ZWxhc3RpYzpwdw=="  # elastic:pw
    assert kibana.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert f'"id": "{DATA_VIEW_ID}"'.encode() in kibana.body
    assert "delete 30 days after rollover" in result.stdout
    assert "imported 8 saved objects" in result.stdout
