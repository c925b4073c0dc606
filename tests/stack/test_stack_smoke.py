"""The whole stack, end to end, as a user would check it: run against a live stack.

    cd compose && docker compose up -d --build --wait
    MINITWIT_STACK_URL=http://127.0.0.1:5000 .venv/bin/pytest tests/stack

Not part of the default ``pytest`` run (pyproject.toml's norecursedirs leaves
tests/stack out): it needs a stack. Given one, it checks that the app answers
on both surfaces; that Prometheus scrapes every target, loaded the project's
rules and reaches Alertmanager (the Watchdog alert arrives there); that Grafana
has every dashboard and its datasources work; that a request's log event is
searchable in Elasticsearch within a minute; and that Kibana has the saved
searches. Without MINITWIT_STACK_URL every test skips, saying so (and fails
where skips are forbidden, MINITWIT_FORBID_SKIPS=1).

Settings (environment variables):

- ``MINITWIT_STACK_URL``: the web UI (http://127.0.0.1:5000, or https://HOST
  behind HAProxy); unset, every test skips.
- ``MINITWIT_STACK_API_URL``: the simulator API; default the same host on port
  5001 (for 5000) or 8443 (for https), else ``<web>/api``.
- ``MINITWIT_STACK_PROMETHEUS_URL``, ``..._ALERTMANAGER_URL``,
  ``..._GRAFANA_URL``, ``..._KIBANA_URL``: default http://127.0.0.1 on 9090,
  9093, 3000 and 5601 (where docker-compose.yml publishes them).
- ``MINITWIT_STACK_ELASTICSEARCH_URL``: unset, searches go through Kibana's
  console proxy (Elasticsearch publishes no port).
- ``GRAFANA_ADMIN_PASSWORD``, ``ELASTIC_PASSWORD``, ``SIMULATOR_USERNAME``,
  ``SIMULATOR_PASSWORD``: from the environment, else from
  ``MINITWIT_STACK_ENV_FILE`` (default compose/.env).
- ``MINITWIT_STACK_REVISION``: when set, minitwit_build_info must report it.
- ``MINITWIT_STACK_CA_FILE`` / ``MINITWIT_STACK_INSECURE=1``: verify TLS with
  this CA / not at all (a self-signed certificate).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEARCH_DEADLINE = 60.0  # "a request's log event is searchable within a minute"
SCRAPE_DEADLINE = 90.0  # a first scrape (15 s interval) and a rule evaluation after start

pytestmark = pytest.mark.stack

T = TypeVar("T")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[name.strip()] = value.strip().strip("\"'")
    return values


@dataclass(frozen=True)
class Stack:
    web: str
    api: str
    prometheus: str
    alertmanager: str
    grafana: str
    kibana: str
    elasticsearch: str | None
    settings: dict[str, str]
    verify: bool | str

    def secret(self, name: str) -> str:
        value = self.settings.get(name)
        assert value, f"set {name} (or MINITWIT_STACK_ENV_FILE, default compose/.env)"
        return value

    def client(self, auth: tuple[str, str] | None = None) -> httpx.Client:
        return httpx.Client(auth=auth, verify=self.verify, timeout=20, follow_redirects=False)


def default_api_url(web: str) -> str:
    parts = urlsplit(web)
    if parts.port == 5000:
        return urlunsplit(parts._replace(netloc=f"{parts.hostname}:5001"))
    if parts.scheme == "https" and parts.port is None:
        return urlunsplit(parts._replace(netloc=f"{parts.hostname}:8443"))
    return f"{web}/api"


@pytest.fixture(scope="module")
def stack() -> Stack:
    web = os.environ.get("MINITWIT_STACK_URL", "").rstrip("/")
    if not web:
        pytest.skip(
            "no stack to test: start one (cd compose && docker compose up -d --wait) and set "
            "MINITWIT_STACK_URL=http://127.0.0.1:5000"
        )
    env_file = Path(os.environ.get("MINITWIT_STACK_ENV_FILE") or ROOT / "compose" / ".env")
    settings = {**read_env_file(env_file), **os.environ}
    verify: bool | str = True
    if os.environ.get("MINITWIT_STACK_CA_FILE"):
        verify = os.environ["MINITWIT_STACK_CA_FILE"]
    elif os.environ.get("MINITWIT_STACK_INSECURE") == "1":
        verify = False

    def url(name: str, default: str) -> str:
        return (os.environ.get(name) or default).rstrip("/")

    return Stack(
        web=web,
        api=url("MINITWIT_STACK_API_URL", default_api_url(web)),
        prometheus=url("MINITWIT_STACK_PROMETHEUS_URL", "http://127.0.0.1:9090"),
        alertmanager=url("MINITWIT_STACK_ALERTMANAGER_URL", "http://127.0.0.1:9093"),
        grafana=url("MINITWIT_STACK_GRAFANA_URL", "http://127.0.0.1:3000"),
        kibana=url("MINITWIT_STACK_KIBANA_URL", "http://127.0.0.1:5601"),
        elasticsearch=os.environ.get("MINITWIT_STACK_ELASTICSEARCH_URL") or None,
        settings=settings,
        verify=verify,
    )


@pytest.fixture(scope="module")
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def simulator_auth(stack: Stack) -> tuple[str, str]:
    return (
        stack.settings.get("SIMULATOR_USERNAME") or "simulator",
        stack.settings.get("SIMULATOR_PASSWORD") or "super_safe!",
    )


def elastic_auth(stack: Stack) -> tuple[str, str]:
    return ("elastic", stack.secret("ELASTIC_PASSWORD"))


def eventually(check: Callable[[], T | None], deadline: float, what: str) -> T:
    """Call ``check`` until it returns something (not None) or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    last: Exception | None = None
    while True:
        try:
            result = check()
            if result is not None:
                return result
        except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
            last = exc
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline:.0f} s (last: {last!r})")
        time.sleep(2)


# --- the app ------------------------------------------------------------------------------


def test_the_web_ui_and_the_api_answer(stack: Stack, http: httpx.Client) -> None:
    for base in (stack.web, stack.api):
        health = http.get(f"{base}/health")
        assert health.status_code == 200, f"{base}/health: {health.status_code}"
        assert health.json() == {"status": "ok", "database": "ok"}
    public = http.get(f"{stack.web}/public")
    assert public.status_code == 200
    assert public.headers["content-type"].startswith("text/html")
    latest = http.get(f"{stack.api}/latest")
    assert latest.status_code == 200
    assert isinstance(latest.json()["latest"], int)
    messages = http.get(f"{stack.api}/msgs", params={"no": 1}, auth=simulator_auth(stack))
    assert messages.status_code == 200, "the simulator's credentials (SIMULATOR_*) are refused"


# --- Prometheus and Alertmanager ----------------------------------------------------------------


def rule_files() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "alerts/rules").glob("*.yml"))]


def test_prometheus_has_every_target_up_and_the_rules_loaded(
    stack: Stack, http: httpx.Client
) -> None:
    def targets_up() -> dict[str, int] | None:
        active = http.get(f"{stack.prometheus}/api/v1/targets").json()["data"]["activeTargets"]
        jobs: dict[str, list[str]] = {}
        for target in active:
            jobs.setdefault(target["labels"]["job"], []).append(target["health"])
        wanted = {"minitwit", "prometheus", "alertmanager"}
        if not wanted <= set(jobs) or any(h != "up" for job in wanted for h in jobs[job]):
            return None
        return {job: len(health) for job, health in jobs.items()}

    up = eventually(targets_up, SCRAPE_DEADLINE, "every target up")
    assert up["minitwit"] >= 1  # one per replica of the app

    groups = http.get(f"{stack.prometheus}/api/v1/rules").json()["data"]["groups"]
    loaded = {(g["name"], r["name"]) for g in groups for r in g["rules"]}
    expected = {
        (group["name"], rule.get("alert") or rule["record"])
        for document in rule_files()
        for group in document["groups"]
        for rule in group["rules"]
    }
    assert expected <= loaded, f"rules not loaded: {sorted(expected - loaded)[:5]}"
    unhealthy = [r["name"] for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert unhealthy == []

    build = http.get(f"{stack.prometheus}/api/v1/query", params={"query": "minitwit_build_info"})
    series = build.json()["data"]["result"]
    assert series, "no minitwit_build_info"
    revision = os.environ.get("MINITWIT_STACK_REVISION")
    if revision:
        assert {s["metric"]["revision"] for s in series} == {revision}


def test_alertmanager_is_reachable_and_gets_the_heartbeat(stack: Stack, http: httpx.Client) -> None:
    assert http.get(f"{stack.alertmanager}/-/ready").status_code == 200
    status = http.get(f"{stack.alertmanager}/api/v2/status").json()
    config = yaml.safe_load(status["config"]["original"])
    assert {r["name"] for r in config["receivers"]} >= {"pager", "chat", "heartbeat"}
    managers = http.get(f"{stack.prometheus}/api/v1/alertmanagers").json()["data"]
    assert managers["activeAlertmanagers"], "Prometheus has no Alertmanager"

    def watchdog() -> list[Any] | None:
        alerts = http.get(f"{stack.alertmanager}/api/v2/alerts").json()
        found = [a for a in alerts if a["labels"].get("alertname") == "Watchdog"]
        return found or None

    eventually(watchdog, SCRAPE_DEADLINE, "the Watchdog alert in Alertmanager")


# --- Grafana ---------------------------------------------------------------------------------


def test_grafana_has_every_dashboard_and_working_datasources(stack: Stack) -> None:
    expected = {
        json.loads(path.read_text())["uid"]
        for path in sorted((ROOT / "dashboards/rendered").glob("*.json"))
    }
    with stack.client(auth=("admin", stack.secret("GRAFANA_ADMIN_PASSWORD"))) as grafana:
        found = grafana.get(f"{stack.grafana}/api/search", params={"type": "dash-db"})
        assert found.status_code == 200, found.text
        assert expected <= {dashboard["uid"] for dashboard in found.json()}
        for uid in ("prometheus", "elasticsearch-logs"):
            health = grafana.get(f"{stack.grafana}/api/datasources/uid/{uid}/health")
            assert health.status_code == 200, f"datasource {uid}: {health.text}"
            assert health.json()["status"] == "OK", f"datasource {uid}: {health.text}"


# --- Elasticsearch and Kibana ---------------------------------------------------------------------


def field(document: dict[str, Any], name: str) -> Any:
    """A field of an indexed document, whether _source nests it or keeps the dotted name."""
    if name in document:
        return document[name]
    head, _, rest = name.partition(".")
    value = document.get(head)
    return field(value, rest) if rest and isinstance(value, dict) else None


def search(stack: Stack, client: httpx.Client, query: dict[str, Any]) -> dict[str, Any]:
    """``POST logs-minitwit-*/_search``, directly or through Kibana's console proxy."""
    path = "logs-minitwit-*/_search"
    if stack.elasticsearch:
        response = client.post(f"{stack.elasticsearch.rstrip('/')}/{path}", json=query)
    else:
        response = client.post(
            f"{stack.kibana}/api/console/proxy",
            params={"path": path, "method": "POST"},
            headers={"kbn-xsrf": "minitwit-stack-smoke"},
            json=query,
        )
    assert response.status_code == 200, response.text[:500]
    answer: dict[str, Any] = response.json()
    return answer


def test_a_request_is_searchable_in_elasticsearch_within_a_minute(
    stack: Stack, http: httpx.Client
) -> None:
    request_id = f"stack-smoke-{uuid.uuid4().hex}"
    user = f"nobody-{uuid.uuid4().hex[:12]}"
    response = http.get(
        f"{stack.api}/msgs/{user}",
        headers={"X-Request-ID": request_id},
        auth=simulator_auth(stack),
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == request_id
    query = {"query": {"term": {"http.request.id": request_id}}, "size": 20}

    with stack.client(auth=elastic_auth(stack)) as client:

        def access_event() -> dict[str, Any] | None:
            hits = search(stack, client, query)["hits"]["hits"]
            events = [hit["_source"] for hit in hits]
            access = [e for e in events if field(e, "event.dataset") == "minitwit.access"]
            return access[0] if access else None

        event = eventually(access_event, SEARCH_DEADLINE, f"the access event of {request_id}")
    assert field(event, "http.response.status_code") == 404
    assert field(event, "url.path") == f"/msgs/{user}"


def test_kibana_has_the_data_view_and_the_saved_searches(stack: Stack) -> None:
    objects = [
        json.loads(line)
        for path in sorted((ROOT / "kibana").glob("*.ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    searches = {o["id"] for o in objects if o["type"] == "search"}
    views = {o["id"] for o in objects if o["type"] == "index-pattern"}
    assert searches
    with stack.client(auth=elastic_auth(stack)) as kibana:
        found = kibana.get(
            f"{stack.kibana}/api/saved_objects/_find", params={"type": "search", "per_page": 1000}
        )
        assert found.status_code == 200, found.text[:500]
        assert searches <= {o["id"] for o in found.json()["saved_objects"]}
        for view in views:
            response = kibana.get(f"{stack.kibana}/api/saved_objects/index-pattern/{view}")
            assert response.status_code == 200, f"data view {view}: {response.status_code}"
