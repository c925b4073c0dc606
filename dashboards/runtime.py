"""Runtime and database: the app's own process metrics, the pool, query latency, failures.

In production the app runs several uvicorn workers in prometheus-client's
multiprocess mode, so the standard ``process_*`` metrics are not exported;
the app samples its own (``minitwit_process_*``), summed over live workers.
"""

from __future__ import annotations

from grafanalib.core import Dashboard, TimeSeries

from dashboards.common import (
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

UID = "minitwit-runtime"

INSTANCE = '{instance=~"$instance"}'
QUERY_BUCKETS = f"minitwit_db_query_duration_seconds_bucket{INSTANCE}"


def _db_quantile(q: float) -> TimeSeries:
    percentile = f"p{round(q * 100)}"
    return timeseries(
        f"Database time {percentile} by operation",
        f"The {percentile} time a service operation spends in the database, by operation. "
        "Statements time out at MINITWIT_DB_TIMEOUT (0.25 s by default).",
        "s",
        [
            Query(
                f"histogram_quantile({q}, sum by (operation, le) (rate({QUERY_BUCKETS}[{RATE}])))",
                "{{operation}}",
            )
        ],
        thresholds=steps("green", (0.25, "red")),
    )


def build() -> Dashboard:
    build_info = stats(
        stat(
            "Version",
            "Version and git revision each selected instance runs (minitwit_build_info).",
            "none",
            [
                Query(
                    f"count by (instance, version, revision) (minitwit_build_info{INSTANCE})",
                    "{{instance}}: {{version}} @ {{revision}}",
                )
            ],
            text_mode="name",
        ),
        stat(
            "Uptime",
            "Time since each instance's oldest live worker started.",
            "s",
            [
                Query(
                    f"time() - max by (instance) (minitwit_start_time_seconds{INSTANCE})",
                    "{{instance}}",
                )
            ],
            thresholds=steps("orange", (600, "green")),
        ),
        stat(
            "Instances",
            "Instances reporting metrics (distinct instance labels on minitwit_build_info).",
            "none",
            [Query(f"count(count by (instance) (minitwit_build_info{INSTANCE}))")],
            thresholds=steps("red", (1, "green")),
            no_value="0",
        ),
        stat(
            "Log events dropped",
            "Log events not shipped to Logstash in the selected range because its queue was "
            "full (Logstash slow or down); stdout still has them.",
            "short",
            [Query(f"sum(increase(minitwit_log_events_dropped_total{INSTANCE}[$__range]))")],
            thresholds=steps("green", (1, "red")),
            decimals=0,
            no_value="0",
        ),
    )
    process = Section(
        "Process",
        [
            graphs(
                timeseries(
                    "CPU",
                    "CPU time all worker processes of an instance use per second "
                    "(1 = 100 % of one core).",
                    "percentunit",
                    [
                        Query(
                            "sum by (instance) "
                            f"(rate(minitwit_process_cpu_seconds_total{INSTANCE}[{RATE}]))",
                            "{{instance}}",
                        )
                    ],
                ),
                timeseries(
                    "Resident memory",
                    "Resident memory of the live worker processes, summed per instance.",
                    "bytes",
                    [
                        Query(
                            f"sum by (instance) (minitwit_process_resident_memory_bytes{INSTANCE})",
                            "{{instance}}",
                        )
                    ],
                ),
                timeseries(
                    "Open file descriptors",
                    "Open file descriptors (sockets included) of the live worker processes, "
                    "summed per instance.",
                    "short",
                    [
                        Query(
                            f"sum by (instance) (minitwit_process_open_fds{INSTANCE})",
                            "{{instance}}",
                        )
                    ],
                ),
            )
        ],
    )
    requests = Section(
        "Requests and failures",
        [
            graphs(
                timeseries(
                    "Requests in progress",
                    "Requests being handled, by instance and surface (published each second).",
                    "short",
                    [
                        Query(
                            "sum by (instance, app) "
                            f"(minitwit_http_requests_in_progress{INSTANCE})",
                            "{{instance}} {{app}}",
                        )
                    ],
                ),
                timeseries(
                    "Failures by kind",
                    "Requests that failed on our side per second, by kind "
                    "(database_unavailable: a 503 because the database did not answer; "
                    "internal: an unhandled error, a 500).",
                    "reqps",
                    [
                        Query(
                            f"sum by (kind) (rate(minitwit_errors_total{INSTANCE}[{RATE}]))",
                            "{{kind}}",
                        )
                    ],
                ),
                timeseries(
                    "Log events dropped",
                    "Log events per second the Logstash shipper dropped (its queue was full).",
                    "cps",
                    [
                        Query(
                            "sum by (instance) "
                            f"(rate(minitwit_log_events_dropped_total{INSTANCE}[{RATE}]))",
                            "{{instance}}",
                        )
                    ],
                ),
            )
        ],
    )
    database = Section(
        "Database",
        [
            graphs(
                timeseries(
                    "Connection pool",
                    "Database connections open in the pools by state (stacked), and the most the "
                    "pools may open (red dashes), over all workers of the selected instances. "
                    "SQLite reports its one connection as idle.",
                    "short",
                    [
                        Query(
                            f"sum by (state) (minitwit_db_pool_connections{INSTANCE})",
                            "{{state}}",
                        ),
                        Query(f"sum(minitwit_db_pool_max_connections{INSTANCE})", "max"),
                    ],
                    stack=True,
                    overrides=[
                        {
                            "matcher": {"id": "byName", "options": "max"},
                            "properties": [
                                {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}},
                                {"id": "custom.fillOpacity", "value": 0},
                                {
                                    "id": "custom.lineStyle",
                                    "value": {"dash": [10, 10], "fill": "dash"},
                                },
                                {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}},
                            ],
                        }
                    ],
                ),
                timeseries(
                    "Connection pool in use",
                    "Share of each instance's maximum database connections in use. "
                    "Near 100 % requests wait for a connection.",
                    "percentunit",
                    [
                        Query(
                            "sum by (instance) "
                            '(minitwit_db_pool_connections{instance=~"$instance",state="in_use"})'
                            " / sum by (instance) "
                            f"(minitwit_db_pool_max_connections{INSTANCE})",
                            "{{instance}}",
                        )
                    ],
                    thresholds=steps("green", (0.8, "red")),
                    max_value=1,
                ),
            ),
            graphs(
                timeseries(
                    "Database operations per second",
                    "Service operations that went to the database, per second, by operation.",
                    "ops",
                    [
                        Query(
                            "sum by (operation) "
                            f"(rate(minitwit_db_query_duration_seconds_count{INSTANCE}[{RATE}]))",
                            "{{operation}}",
                        )
                    ],
                    stack=True,
                ),
                timeseries(
                    "Average database time by operation",
                    "Mean time a service operation spends in the database, by operation.",
                    "s",
                    [
                        Query(
                            "sum by (operation) "
                            f"(rate(minitwit_db_query_duration_seconds_sum{INSTANCE}[{RATE}]))"
                            " / sum by (operation) "
                            f"(rate(minitwit_db_query_duration_seconds_count{INSTANCE}[{RATE}]))",
                            "{{operation}}",
                        )
                    ],
                ),
            ),
            graphs(_db_quantile(0.5), _db_quantile(0.95), _db_quantile(0.99)),
        ],
    )
    return dashboard(
        uid=UID,
        title="MiniTwit / Runtime and database",
        module="runtime",
        description="The app's processes (CPU, memory, file descriptors), its database pool and "
        "query latency, failures by kind, build and uptime.",
        variables=[query_variable("instance", "Instance", "minitwit_build_info", "instance")],
        sections=[Section("Build", [build_info]), process, requests, database],
    )
