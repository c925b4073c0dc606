"""Every Prometheus metric MiniTwit exports, in one place.

Names carry the ``minitwit_`` prefix and base units (seconds, bytes). Labels
are bounded: the route *template* (``/msgs/<path:username>``), never the raw
path or a username, so the series count cannot grow with the data.

With several worker processes, prometheus-client's multiprocess mode keeps
each worker's values in files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
``minitwit serve``), and ``/metrics`` on any worker sums them; the gauge
modes below say how each gauge combines across workers.
"""

from __future__ import annotations

import bisect
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import REGISTRY

# Buckets resolve the simulator's 0.3 s timeout: 0.25 and 0.3 sit either side of it.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# --- RED, per surface (app="web" | "api") -----------------------------------
HTTP_REQUESTS = Counter(
    "minitwit_http_requests_total",
    "HTTP requests answered, by surface, method, route template and status code.",
    ["app", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "minitwit_http_request_duration_seconds",
    "Time from request received to response sent, by surface, method and route template.",
    ["app", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "minitwit_http_requests_in_progress",
    "Requests being handled, by surface (each worker's count as of the last second).",
    ["app"],
    multiprocess_mode="livesum",
)

# --- The domain ---------------------------------------------------------------
MESSAGES_POSTED = Counter(
    "minitwit_messages_posted_total", "Messages posted, by source (web/api).", ["source"]
)
FOLLOWS = Counter("minitwit_follows_total", "Follow actions, by source (web/api).", ["source"])
UNFOLLOWS = Counter(
    "minitwit_unfollows_total", "Unfollow actions, by source (web/api).", ["source"]
)
REGISTRATIONS = Counter(
    "minitwit_registrations_total", "Users registered, by source (web/api).", ["source"]
)
LOGINS = Counter(
    "minitwit_logins_total", "Web sign-in attempts, by result (ok/failed).", ["result"]
)
USERS_NOT_FOUND = Counter(
    "minitwit_user_not_found_total",
    "Requests that named a user who does not exist, by surface.",
    ["app"],
)
SIMULATOR_LATEST = Gauge(
    "minitwit_simulator_latest_id",
    "The simulator's latest processed action id, as last recorded by this service.",
    multiprocess_mode="mostrecent",
)

# --- Runtime and dependencies ---------------------------------------------------
BUILD_INFO = Gauge(
    "minitwit_build_info",
    "Always 1; the labels say which version and git revision is running.",
    ["version", "revision"],
    multiprocess_mode="max",
)
START_TIME = Gauge(
    "minitwit_start_time_seconds",
    "Unix time the oldest live worker process started (uptime = time() - this).",
    multiprocess_mode="livemin",
)
PROCESS_CPU_SECONDS = Counter(
    "minitwit_process_cpu_seconds_total", "CPU time used by the worker processes."
)
PROCESS_RESIDENT_MEMORY = Gauge(
    "minitwit_process_resident_memory_bytes",
    "Resident memory of the live worker processes.",
    multiprocess_mode="livesum",
)
PROCESS_OPEN_FDS = Gauge(
    "minitwit_process_open_fds",
    "Open file descriptors of the live worker processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "minitwit_db_pool_connections",
    "Database connections open in the pools, by state (in_use/idle).",
    ["state"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "minitwit_db_pool_max_connections",
    "Maximum database connections the pools may open (all workers).",
    multiprocess_mode="livesum",
)
DB_QUERY_DURATION = Histogram(
    "minitwit_db_query_duration_seconds",
    "Time spent in the database per service operation.",
    ["operation"],
    buckets=DB_BUCKETS,
)
ERRORS = Counter(
    "minitwit_errors_total",
    "Requests that failed on our side, by kind (database_unavailable, internal).",
    ["kind"],
)
LOG_EVENTS_DROPPED = Counter(
    "minitwit_log_events_dropped_total",
    "Log events not shipped to Logstash because its queue was full.",
)


class LiveCount:
    """A count that changes on every request, kept as a plain int and written to its
    gauge only when published (each second by the runtime sampler, and before each
    scrape). A multiprocess gauge write takes a lock and packs into a shared file:
    up and down on every request, that was an eighth of what observability cost."""

    def __init__(self, gauge: Gauge, **labels: str) -> None:
        self.value = 0
        self._gauge = gauge
        self._labels = labels

    def publish(self) -> None:
        self._gauge.labels(**self._labels).set(self.value)


class CountTally:
    """A counter's increments, by label values, added up in this worker's memory and
    written to the counter when published (each second by the runtime sampler,
    before each scrape, and when the worker stops).

    In multiprocess mode each update takes a lock and packs a value into a
    shared file. For what changes on every request those writes were most of
    what the metrics cost: ``bench.inprocess --compare metrics`` measured 2.6
    to 3.8% of the server's CPU per request with the domain counters and
    database timings written directly, 1.0 to 1.5% with them tallied. The
    price: another worker's updates reach a scrape up to a second late (the
    scraping worker publishes its own first), and a worker killed with SIGKILL
    loses its last second of them.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._counts: dict[tuple[str, ...], int] = {}

    def inc(self, *labels: str) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0) + 1

    def publish(self) -> None:
        counts, self._counts = self._counts, {}
        for labels, count in counts.items():
            self._counter.labels(*labels).inc(count)


class DurationTally:
    """A histogram's observations, by label values, tallied like ``CountTally``'s.

    prometheus-client has no public way to add several observations at once, so
    ``publish`` adds to a child's ``_sum`` and ``_buckets`` values, as
    ``observe`` itself does (``tests/test_metrics.py`` holds the two to the same
    exposition).
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._bounds = histogram._upper_bounds  # the buckets' le values, +Inf last
        self._tallies: dict[tuple[str, ...], list[float]] = {}

    def observe(self, seconds: float, *labels: str) -> None:
        tally = self._tallies.get(labels)
        if tally is None:  # the sum, then a count per bucket
            tally = self._tallies[labels] = [0.0] * (1 + len(self._bounds))
        tally[0] += seconds
        tally[1 + bisect.bisect_left(self._bounds, seconds)] += 1  # the first bound >= it

    def publish(self) -> None:
        tallies, self._tallies = self._tallies, {}
        for labels, (total, *buckets) in tallies.items():
            child = self._histogram.labels(*labels)
            child._sum.inc(total)
            for bucket, observed in zip(child._buckets, buckets, strict=True):
                if observed:
                    bucket.inc(observed)


class RequestTally:
    """One surface's HTTP request counts and durations, tallied in memory."""

    def __init__(
        self, surface: str, requests: Counter = HTTP_REQUESTS, durations: Histogram = HTTP_DURATION
    ) -> None:
        self.surface = surface
        self._requests = CountTally(requests)
        self._durations = DurationTally(durations)

    def add(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.inc(self.surface, method, route, str(status))
        self._durations.observe(seconds, self.surface, method, route)

    def publish(self) -> None:
        self._requests.publish()
        self._durations.publish()


SURFACES = ("web", "api")
IN_PROGRESS = {surface: LiveCount(HTTP_IN_PROGRESS, app=surface) for surface in SURFACES}
REQUESTS = {surface: RequestTally(surface) for surface in SURFACES}
DB_DURATIONS = DurationTally(DB_QUERY_DURATION)
# The domain counters and the error count, tallied like the requests.
COUNTED = {
    counter: CountTally(counter)
    for counter in (
        MESSAGES_POSTED, FOLLOWS, UNFOLLOWS, REGISTRATIONS, LOGINS, USERS_NOT_FOUND, ERRORS
    )
}  # fmt: skip


def count(counter: Counter, *labels: str) -> None:
    """One more of ``counter`` (a domain counter) with these label values, tallied."""
    COUNTED[counter].inc(*labels)


def publish_pending() -> None:
    """Write what this worker tallied in memory to its metrics."""
    for live in IN_PROGRESS.values():
        live.publish()
    for requests in REQUESTS.values():
        requests.publish()
    DB_DURATIONS.publish()
    for counted in COUNTED.values():
        counted.publish()


P = ParamSpec("P")
R = TypeVar("R")


def timed_db(operation: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Time a service function's database work into ``minitwit_db_query_duration_seconds``
    (tallied: ``DurationTally``)."""
    DB_QUERY_DURATION.labels(operation=operation)  # the series exists, at 0, from the start
    observe = DB_DURATIONS.observe

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                observe(time.perf_counter() - start, operation)

        return timed

    return decorate


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def record_start(version: str, revision: str) -> None:
    BUILD_INFO.labels(version=version, revision=revision).set(1)
    START_TIME.set(time.time())
    # Create the labelled series at 0, so that rate() and absence checks see
    # them from the first scrape rather than from the first event.
    for source in ("web", "api"):
        for counter in (MESSAGES_POSTED, FOLLOWS, UNFOLLOWS, REGISTRATIONS):
            counter.labels(source=source)
        USERS_NOT_FOUND.labels(app=source)
    for result in ("ok", "failed"):
        LOGINS.labels(result=result)
    for kind in ("database_unavailable", "internal"):
        ERRORS.labels(kind=kind)


def exposition() -> tuple[bytes, str]:
    """The text exposition for ``/metrics``: this process, or all workers summed."""
    publish_pending()
    if multiprocess_dir():
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """Drop a stopped worker's live gauges (in-progress, pool) from the sums."""
    if multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(pid)
