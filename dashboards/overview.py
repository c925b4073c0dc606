"""Service overview: traffic, errors, latency per route, saturation, uptime and version."""

from __future__ import annotations

from grafanalib.core import Dashboard, TimeSeries

from dashboards.common import (
    NOT_PROBES,
    RATE,
    Query,
    Section,
    dashboard,
    graphs,
    query_variable,
    stat,
    stats,
    steps,
    timeseries,
)

UID = "minitwit-overview"

REQUESTS = 'minitwit_http_requests_total{app=~"$app"}'
ERRORS_4XX_5XX = 'minitwit_http_requests_total{app=~"$app",status=~"[45].."}'
# Error ratios and latency without the probes, as the alerts that link here compute them.
USER_REQUESTS = f'minitwit_http_requests_total{{app=~"$app",{NOT_PROBES}}}'
USER_5XX = f'minitwit_http_requests_total{{app=~"$app",{NOT_PROBES},status=~"5.."}}'
USER_BUCKETS = f'minitwit_http_request_duration_seconds_bucket{{app=~"$app",{NOT_PROBES}}}'
BUCKETS = 'minitwit_http_request_duration_seconds_bucket{app=~"$app"}'
# The simulator gives up on a request after 0.3 s: latency panels draw that line.
SIMULATOR_TIMEOUT = 0.3
LATENCY_STEPS = steps("green", (0.25, "orange"), (SIMULATOR_TIMEOUT, "red"))


def _quantile(q: float, *by: str, buckets: str = BUCKETS) -> str:
    labels = ", ".join([*by, "le"])
    return f"histogram_quantile({q}, sum by ({labels}) (rate({buckets}[{RATE}])))"


def _latency_by_route(q: float) -> TimeSeries:
    percentile = f"p{round(q * 100)}"
    return timeseries(
        f"{percentile} latency by route",
        f"The {percentile} time from request received to response sent, per surface, method "
        "and route template (from the request duration histogram). The red line is the "
        "simulator's 0.3 s timeout.",
        "s",
        [Query(_quantile(q, "app", "method", "route"), "{{app}} {{method}} {{route}}")],
        thresholds=LATENCY_STEPS,
    )


def build() -> Dashboard:
    top = stats(
        stat(
            "Request rate",
            "HTTP requests answered per second, all routes of the selected surfaces.",
            "reqps",
            [Query(f"sum(rate({REQUESTS}[{RATE}]))")],
        ),
        stat(
            "5xx error ratio",
            "Share of requests (probes /metrics and /health left out) answered with a 5xx "
            "status. Orange past the API's availability objective (0.5 %), red past 2 %.",
            "percentunit",
            [
                Query(
                    f"(sum(rate({USER_5XX}[{RATE}])) or vector(0))"
                    f" / sum(rate({USER_REQUESTS}[{RATE}]))"
                )
            ],
            thresholds=steps("green", (0.005, "orange"), (0.02, "red")),
            decimals=2,
        ),
        stat(
            "p99 latency",
            "99th percentile request duration over all routes of the selected surfaces "
            "(probes left out); red past the simulator's 0.3 s timeout.",
            "s",
            [Query(_quantile(0.99, buckets=USER_BUCKETS))],
            thresholds=LATENCY_STEPS,
        ),
        stat(
            "Requests in progress",
            "Requests being handled, summed over workers and instances (each worker "
            "publishes its count every second and when scraped).",
            "short",
            [Query('sum(minitwit_http_requests_in_progress{app=~"$app"})')],
        ),
        stat(
            "Uptime",
            "Time since the most recent (re)start of any instance; an instance counts "
            "from when its oldest live worker started.",
            "s",
            [Query("time() - max(minitwit_start_time_seconds)")],
            thresholds=steps("orange", (600, "green")),
        ),
        stat(
            "Version",
            "The version and git revision running (from minitwit_build_info); "
            "two entries mean a deploy is in progress or instances disagree.",
            "none",
            [
                Query(
                    "count by (version, revision) (minitwit_build_info)",
                    "{{version}} @ {{revision}}",
                )
            ],
            text_mode="name",
        ),
    )
    traffic = Section(
        "Traffic",
        [
            graphs(
                timeseries(
                    "Requests by surface and status",
                    "Requests per second by surface (web/api) and HTTP status code.",
                    "reqps",
                    [
                        Query(
                            f"sum by (app, status) (rate({REQUESTS}[{RATE}]))", "{{app}} {{status}}"
                        )
                    ],
                    stack=True,
                ),
                timeseries(
                    "Requests by route",
                    "Requests per second by surface, method and route template "
                    '("<unmatched>" is any path no route matched).',
                    "reqps",
                    [
                        Query(
                            f"sum by (app, method, route) (rate({REQUESTS}[{RATE}]))",
                            "{{app}} {{method}} {{route}}",
                        )
                    ],
                    stack=True,
                ),
            )
        ],
    )
    errors = Section(
        "Errors",
        [
            graphs(
                timeseries(
                    "5xx error ratio by surface",
                    "Share of each surface's requests (probes /metrics and /health left out) "
                    "answered with a 5xx status. The dashed line is the API availability "
                    "objective (0.5 % errors).",
                    "percentunit",
                    [
                        Query(
                            f"(sum by (app) (rate({USER_5XX}[{RATE}]))"
                            f" or sum by (app) (rate({USER_REQUESTS}[{RATE}])) * 0)"
                            f" / sum by (app) (rate({USER_REQUESTS}[{RATE}]))",
                            "{{app}}",
                        )
                    ],
                    thresholds=steps("green", (0.005, "red")),
                ),
                timeseries(
                    "4xx and 5xx responses by route",
                    "Error responses per second by surface, method, route template and status. "
                    "404s on the API are mostly users the simulator names before registering them.",
                    "reqps",
                    [
                        Query(
                            f"sum by (app, method, route, status) (rate({ERRORS_4XX_5XX}[{RATE}]))",
                            "{{app}} {{method}} {{route}} {{status}}",
                        )
                    ],
                ),
                timeseries(
                    "Failures by kind",
                    "Requests that failed on our side per second, by kind, both surfaces "
                    "(database_unavailable: the database did not answer in time; internal: a bug).",
                    "reqps",
                    [Query(f"sum by (kind) (rate(minitwit_errors_total[{RATE}]))", "{{kind}}")],
                ),
            )
        ],
    )
    latency = Section(
        "Latency",
        [
            graphs(
                timeseries(
                    "Latency percentiles by surface",
                    "p50, p95 and p99 request duration per surface over all routes, probes "
                    "left out. The red line is the simulator's 0.3 s timeout.",
                    "s",
                    [
                        Query(
                            _quantile(q, "app", buckets=USER_BUCKETS),
                            f"{{{{app}}}} p{round(q * 100)}",
                        )
                        for q in (0.5, 0.95, 0.99)
                    ],
                    thresholds=LATENCY_STEPS,
                ),
                _latency_by_route(0.5),
            ),
            graphs(_latency_by_route(0.95), _latency_by_route(0.99)),
        ],
    )
    saturation = Section(
        "Saturation",
        [
            graphs(
                timeseries(
                    "Requests in progress by surface",
                    "Requests being handled at once, summed over workers and instances (published "
                    "each second). "
                    "A climb with flat traffic means requests are waiting (database, hashing).",
                    "short",
                    [
                        Query(
                            'sum by (app) (minitwit_http_requests_in_progress{app=~"$app"})',
                            "{{app}}",
                        )
                    ],
                ),
                timeseries(
                    "Database pool in use",
                    "Share of the database pools' maximum connections in use, all workers. "
                    "Near 100 % requests queue for a connection.",
                    "percentunit",
                    [
                        Query(
                            'sum(minitwit_db_pool_connections{state="in_use"})'
                            " / sum(minitwit_db_pool_max_connections)",
                            "in use",
                        )
                    ],
                    thresholds=steps("green", (0.8, "red")),
                    max_value=1,
                ),
                timeseries(
                    "CPU by instance",
                    "CPU time the worker processes use per second (1 = 100 % of one core).",
                    "percentunit",
                    [
                        Query(
                            f"sum by (instance) (rate(minitwit_process_cpu_seconds_total[{RATE}]))",
                            "{{instance}}",
                        )
                    ],
                ),
            )
        ],
    )
    return dashboard(
        uid=UID,
        title="MiniTwit / Service overview",
        module="overview",
        description="Traffic, errors, latency and saturation of the web UI and the simulator API.",
        variables=[
            query_variable("app", "Surface", "minitwit_http_requests_total", "app"),
        ],
        sections=[Section("Now", [top]), traffic, errors, latency, saturation],
    )
