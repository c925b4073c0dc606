"""``/metrics`` through real servers: the RED series, the domain counters, bounded labels,
and multiprocess mode with two workers, where the counts of both workers add up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.observability import metrics
from tests.conftest import SIMULATOR_AUTH, LiveServer, start_server
from tests.logdocs import flatten, parse_lines
from tests.processes import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def exported_families() -> set[str]:
    names = set()
    for attribute in vars(metrics).values():
        if isinstance(attribute, metrics.Counter | metrics.Gauge | metrics.Histogram):
            names.add(attribute._name)
    return names


@pytest.fixture(scope="module")
def two_workers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path_factory.mktemp("metrics2"), workers=2)
    yield server
    server.stop()


def test_red_and_domain_metrics_count_what_happened(live: LiveServer) -> None:
    user = f"metrics {uuid.uuid4().hex[:6]}"
    before = scrape(live.api_url)
    with httpx.Client(base_url=live.api_url, headers=SIMULATOR_AUTH, timeout=10) as api:
        assert (
            api.post("/register", json={"username": user, "email": "m@x", "pwd": "p"}).status_code
            == 204
        )
        for i in range(3):
            assert (
                api.post(f"/msgs/{user}?latest={i + 10}", json={"content": "hi"}).status_code == 204
            )
        assert api.get("/msgs/nobody-here").status_code == 404
        assert api.post(f"/fllws/{user}", json={"follow": user}).status_code == 204
        assert api.post(f"/fllws/{user}", json={"unfollow": user}).status_code == 204
    after = scrape(live.web_url)  # either port shows the same numbers

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/msgs/<path:username>"
    assert (
        delta("minitwit_http_requests_total", app="api", method="POST", route=route, status="204")
        == 3
    )
    assert (
        delta("minitwit_http_requests_total", app="api", method="GET", route=route, status="404")
        == 1
    )
    assert (
        delta("minitwit_http_request_duration_seconds_count", app="api", method="POST", route=route)
        == 3
    )
    assert delta("minitwit_messages_posted_total", source="api") == 3
    assert delta("minitwit_registrations_total", source="api") == 1
    assert delta("minitwit_follows_total", source="api") == 1
    assert delta("minitwit_unfollows_total", source="api") == 1
    assert delta("minitwit_user_not_found_total", app="api") == 1
    assert value(after, "minitwit_simulator_latest_id") == 12
    assert value(after, "minitwit_build_info") == 1
    assert value(after, "minitwit_start_time_seconds") > 0
    # Labels are bounded: route templates, never raw paths or usernames.
    for name, labels in after:
        for label_value in dict(labels).values():
            assert user not in label_value, (name, labels)
            assert "nobody-here" not in label_value, (name, labels)


def test_every_defined_metric_is_exported(live: LiveServer) -> None:
    httpx.get(f"{live.web_url}/public", timeout=10)
    exposed = {name for name, _ in scrape(live.api_url)}
    for family in exported_families():
        candidates = {family, f"{family}_total", f"{family}_count", f"{family}_bucket"}
        assert candidates & exposed, f"{family} is defined but /metrics does not show it"


def test_two_workers_add_up(two_workers: LiveServer) -> None:
    """Connection: close spreads requests over both workers; /metrics sums them."""
    route_labels = {"app": "api", "method": "GET", "route": "/latest", "status": "200"}
    before = value(scrape(two_workers.api_url), "minitwit_http_requests_total", **route_labels)
    sent = 60
    for _ in range(sent):
        response = httpx.get(
            f"{two_workers.api_url}/latest", headers={"Connection": "close"}, timeout=10
        )
        assert response.status_code == 200
    served_by = {
        flatten(line).get("process.pid")
        for line in parse_lines(two_workers.log())
        if flatten(line).get("http.route") == "/latest"
    }
    assert len(served_by) == 2, f"requests were not spread over both workers: {served_by}"
    for url in (two_workers.api_url, two_workers.web_url):
        # Each worker writes its counts to the shared files each second (the worker
        # serving the scrape, at once); a scrape is a request to /metrics, not to
        # /latest: the sum becomes exact, and stays so.
        wait_until(
            lambda url=url: (
                value(scrape(url), "minitwit_http_requests_total", **route_labels) - before == sent
                or None
            ),
            timeout=3,
            what=f"{sent} requests to /latest counted on {url}",
        )


def test_a_tally_publishes_what_the_metrics_own_updates_would() -> None:
    """``RequestTally`` adds to a histogram's private values: the exposition must be the
    one ``inc`` and ``observe`` make, bucket bounds (le is inclusive) included."""
    registries = {way: CollectorRegistry() for way in ("tally", "direct")}
    made = {
        way: (
            metrics.Counter("t_requests", "x", ["app", "method", "route", "status"], registry=r),
            metrics.Histogram(
                "t_seconds", "x", ["app", "method", "route"], buckets=metrics.LATENCY_BUCKETS,
                registry=r,
            ),
        )
        for way, r in registries.items()
    }  # fmt: skip
    tally = metrics.RequestTally("api", *made["tally"])
    requests, durations = made["direct"]
    observed = [0.0, 0.001, 0.0010001, 0.3, 0.2999, 7.0, 1e9, 0.3, 0.004]
    for _ in range(2):  # published twice: the second adds to the first
        for index, seconds in enumerate(observed):
            status = 200 if index % 3 else 404
            tally.add("GET", "/msgs", status, seconds)
            requests.labels("api", "GET", "/msgs", str(status)).inc()
            durations.labels("api", "GET", "/msgs").observe(seconds)
        assert _exposed(registries["tally"]) != _exposed(registries["direct"])
        tally.publish()
        assert _exposed(registries["tally"]) == _exposed(registries["direct"])


def _exposed(registry: CollectorRegistry) -> list[str]:
    """The exposition without the ``_created`` times (each metric's own instant)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def test_requests_in_progress_counts_the_ones_in_flight(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    """Counted in memory and published when scraped (and each second): a slow request
    in flight shows, and is gone once answered. The scrape counts itself on its surface."""
    server = start_server(sqlite_url, tmp_path, env={"MINITWIT_FAULT_INJECTION": "1"})
    servers.append(server)
    in_progress = "minitwit_http_requests_in_progress"
    assert value(scrape(server.api_url), in_progress, app="api") == 1
    delay = httpx.put(f"{server.web_url}/_faults", json={"delay_seconds": 3})
    assert delay.status_code == 200
    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = [pool.submit(httpx.get, f"{server.api_url}/latest", timeout=10) for _ in range(2)]
        seen = wait_until(
            lambda: value(scrape(server.api_url), in_progress, app="api") == 3 or None,
            what="two slow requests in progress on the API",
            timeout=2.5,
        )
        assert seen
        assert value(scrape(server.web_url), in_progress, app="web") == 1
        assert [future.result().status_code for future in slow] == [200, 200]
    assert value(scrape(server.api_url), in_progress, app="api") == 1
