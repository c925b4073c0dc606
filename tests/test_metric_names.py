"""The names contract: every metric a dashboard or rule reads is one the app exports.

Names come from parsing each query with promql-parser. The app's names come
from its prometheus-client registry (app/observability/metrics.py), with the
series each type writes (``_total``; ``_bucket``/``_sum``/``_count``). Series
recorded by a rule under alerts/ count as known, and so do the few series
Prometheus writes itself (``up``, ``ALERTS``...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.observability import metrics
from tests import promql

HISTOGRAM_BOUNDS = {
    "minitwit_http_request_duration_seconds_bucket": metrics.LATENCY_BUCKETS,
    "minitwit_db_query_duration_seconds_bucket": metrics.DB_BUCKETS,
}


def all_queries(
    dashboards_dir: Path = promql.RENDERED_DIR, alerts_dir: Path = promql.ALERTS_DIR
) -> tuple[list[promql.Query], set[str]]:
    """The queries of every rendered dashboard and rule file, and the recorded names."""
    queries = [
        query
        for name, document in promql.rendered_dashboards(dashboards_dir).items()
        for query in promql.dashboard_queries(document, name)
    ]
    recorded: set[str] = set()
    for path in promql.rule_files(alerts_dir):
        rule_queries, rule_records = promql.rule_queries(path)
        queries.extend(rule_queries)
        recorded |= rule_records
    return queries, recorded


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return promql.exported_names()


def test_exported_names_are_what_metrics_serves(exported: set[str]) -> None:
    assert {
        "minitwit_http_requests_total",
        "minitwit_http_request_duration_seconds_bucket",
        "minitwit_http_request_duration_seconds_sum",
        "minitwit_http_request_duration_seconds_count",
        "minitwit_http_requests_in_progress",
        "minitwit_start_time_seconds",
    } <= exported
    # Not on the multiprocess /metrics: prometheus-client's default collectors,
    # `_created` series, a counter without `_total`, a histogram's bare name.
    assert (
        not {
            "process_cpu_seconds_total",
            "python_info",
            "minitwit_http_requests_created",
            "minitwit_http_requests",
            "minitwit_http_request_duration_seconds",
        }
        & exported
    )
    assert all(name.startswith("minitwit_") for name in exported)


def test_every_metric_dashboards_and_rules_read_is_exported(exported: set[str]) -> None:
    queries, recorded = all_queries()
    assert len(queries) > len(promql.rendered_dashboards())
    assert promql.unknown_names(queries, exported, recorded) == []


def test_le_matchers_name_real_bucket_bounds() -> None:
    queries, _ = all_queries()
    assert promql.bucket_problems(queries, HISTOGRAM_BOUNDS) == []


def test_every_exported_metric_is_on_a_dashboard() -> None:
    """A metric nobody can see is either missing a panel or should not exist."""
    shown: set[str] = set()
    for name, document in promql.rendered_dashboards().items():
        for query in promql.dashboard_queries(document, name):
            shown |= promql.metric_names(query.expr)
    unseen = [family for family, series in promql.exported_metrics().items() if not series & shown]
    assert unseen == []


# --- The checker itself catches what it is for -------------------------------------


def write_dashboard(directory: Path, expr: str, variable_query: str | None = None) -> None:
    directory.mkdir(parents=True)
    templating = []
    if variable_query is not None:
        templating.append({"name": "v", "type": "query", "query": variable_query})
    document = {
        "uid": "t",
        "panels": [{"title": "t", "targets": [{"expr": expr, "refId": "A"}]}],
        "templating": {"list": templating},
    }
    (directory / "t.json").write_text(json.dumps(document))


def write_rules(directory: Path, rules: list[dict[str, str]]) -> None:
    (directory / "nested").mkdir(parents=True)
    (directory / "nested" / "rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]})
    )
    (directory / "alertmanager.yml").write_text(yaml.safe_dump({"route": {"receiver": "x"}}))


@pytest.mark.parametrize(
    ("expr", "unknown"),
    [
        ('sum(rate(minitwit_typo_total{app=~"$app"}[$__rate_interval]))', "minitwit_typo_total"),
        ("rate(minitwit_http_requests[5m])", "minitwit_http_requests"),  # no _total
        ("minitwit_http_requests_created", "minitwit_http_requests_created"),
        ("minitwit_http_requests_total_bucket", "minitwit_http_requests_total_bucket"),
        ("process_resident_memory_bytes", "process_resident_memory_bytes"),
        ("max_over_time(minitwit_typo[1h:1m])", "minitwit_typo"),  # inside a subquery
        ('{__name__="minitwit_typo"}', "minitwit_typo"),
        ('{__name__=~"minitwit_.*"}', "no literal metric name"),
    ],
)
def test_checker_flags_a_panel_on_an_unknown_metric(
    tmp_path: Path, exported: set[str], expr: str, unknown: str
) -> None:
    write_dashboard(tmp_path / "dashboards", expr)
    queries, recorded = all_queries(tmp_path / "dashboards", tmp_path / "alerts")
    problems = promql.unknown_names(queries, exported, recorded)
    assert len(problems) == 1
    assert unknown in problems[0]
    assert "t.json $.panels[0].targets[0]" in problems[0]


def test_checker_reads_variable_queries(tmp_path: Path, exported: set[str]) -> None:
    write_dashboard(
        tmp_path / "dashboards",
        "sum(minitwit_http_requests_in_progress)",
        variable_query="label_values(minitwit_typo_info, instance)",
    )
    queries, recorded = all_queries(tmp_path / "dashboards", tmp_path / "alerts")
    assert [query.where for query in queries][-1].endswith("$.templating.list[0]")
    assert promql.unknown_names(queries, exported, recorded) == [
        f"{queries[-1].where}: minitwit_typo_info is not exported by the app nor recorded by a rule"
    ]


def test_checker_reads_rule_files_and_knows_recorded_names(
    tmp_path: Path, exported: set[str]
) -> None:
    write_dashboard(
        tmp_path / "dashboards", "api:request_errors:ratio_rate5m + api:never_recorded:ratio"
    )
    write_rules(
        tmp_path / "alerts",
        [
            {
                "record": "api:request_errors:ratio_rate5m",
                "expr": 'sum(rate(minitwit_http_requests_total{status=~"5.."}[5m]))'
                " / sum(rate(minitwit_http_requests_total[5m]))",
            },
            {"alert": "TypoAlert", "expr": "rate(minitwit_eror_total[5m]) > 0"},
            {"alert": "Down", "expr": 'up{job="minitwit"} == 0'},
        ],
    )
    queries, recorded = all_queries(tmp_path / "dashboards", tmp_path / "alerts")

    assert recorded == {"api:request_errors:ratio_rate5m"}
    problems = promql.unknown_names(queries, exported, recorded)
    assert len(problems) == 2
    assert "api:never_recorded:ratio is not exported" in problems[0]
    assert "rule 'TypoAlert'" in problems[1]
    assert "minitwit_eror_total is not exported" in problems[1]


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ('minitwit_http_request_duration_seconds_bucket{le="0.2"}', 'le="0.2" is not a bucket'),
        ('minitwit_db_query_duration_seconds_bucket{le="1"}', 'le="1" is not a bucket'),
        ('minitwit_http_request_duration_seconds_bucket{le=~"0.3"}', "must be le="),
        ('minitwit_http_requests_total{le="0.3"}', "not a known histogram"),
    ],
)
def test_checker_flags_le_matchers_off_the_buckets(tmp_path: Path, expr: str, problem: str) -> None:
    write_dashboard(tmp_path / "dashboards", expr)
    queries, _ = all_queries(tmp_path / "dashboards", tmp_path / "alerts")
    problems = promql.bucket_problems(queries, HISTOGRAM_BOUNDS)
    assert len(problems) == 1
    assert problem in problems[0]
    ok = 'minitwit_db_query_duration_seconds_bucket{le="1.0"} + x_bucket{le="+Inf"}'
    assert (
        promql.bucket_problems([promql.Query("ok", ok)], {**HISTOGRAM_BOUNDS, "x_bucket": ()}) == []
    )
