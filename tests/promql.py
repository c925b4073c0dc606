"""Find the PromQL in dashboards and rule files, and the metric names it reads.

Used by the dashboard tests and by the metric-names contract: queries are
parsed with promql-parser (Grafana's variables replaced by sample values
first), never picked apart with regular expressions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client.core import REGISTRY
from prometheus_client.utils import floatToGoString

ROOT = Path(__file__).resolve().parent.parent
RENDERED_DIR = ROOT / "dashboards" / "rendered"
ALERTS_DIR = ROOT / "alerts"

# Grafana's built-in variables, by what they stand for in a query.
GRAFANA_BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_ms": "3600000",
    "__range_s": "3600",
}
# A dashboard variable inside a label matcher; outside a string it does not
# parse, or parses as a metric name the contract then rejects.
VARIABLE_VALUE = "grafana_variable_value"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)

# Series Prometheus itself writes for every target and alert, not the app.
PROMETHEUS_SYNTHETIC = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)

# The series each metric type puts on /metrics. `minitwit serve` always runs in
# prometheus-client's multiprocess mode, which writes no `_created` series.
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}


@dataclass(frozen=True)
class Query:
    where: str  # file and position, for messages
    expr: str


def variables(expr: str) -> set[str]:
    """The Grafana variables an expression uses, built-ins included."""
    return {next(group for group in match.groups() if group) for match in _VARIABLE.finditer(expr)}


def substitute(expr: str) -> str:
    """Replace Grafana variables with values PromQL accepts where they stand."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name.startswith("__"):
            if name not in GRAFANA_BUILTINS:
                raise ValueError(f"unknown Grafana built-in variable ${name} in {expr!r}")
            return GRAFANA_BUILTINS[name]
        return VARIABLE_VALUE

    return _VARIABLE.sub(value, expr)


def parse(expr: str) -> promql_parser.Expr:
    return promql_parser.parse(substitute(expr))


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector in the expression (those inside range selectors too)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            found.append(node.vector_selector)

    promql_parser.walk(parse(expr), visit)
    return found


def selector_name(selector: promql_parser.VectorSelector) -> str | None:
    if selector.name:
        return selector.name
    for matcher in selector.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
            return matcher.value
    return None


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads; a selector without a literal name is an error."""
    names = set()
    for selector in selectors(expr):
        name = selector_name(selector)
        if name is None:
            raise ValueError(f"selector {selector} has no literal metric name: {expr!r}")
        names.add(name)
    return names


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def walk_json(document: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in a document, with its path ("$.panels[3].targets[0]")."""
    return _walk(document, "$")


def variable_query(variable: dict[str, Any]) -> str | None:
    """The PromQL inside a query variable's ``label_values(...)``/``query_result(...)``."""
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    if not isinstance(query, str):
        raise ValueError(f"variable {variable.get('name')!r}: unreadable query {query!r}")
    if match := _QUERY_RESULT.match(query):
        return match["expr"]
    if match := _LABEL_VALUES.match(query):
        args = match["args"]
        if "," not in args:  # label_values(label): all series, no metric named
            return None
        return args.rsplit(",", 1)[0]
    raise ValueError(f"variable {variable.get('name')!r}: unsupported query {query!r}")


def dashboard_queries(document: dict[str, Any], source: str) -> list[Query]:
    """Every PromQL query of a rendered dashboard: targets, annotations, variables."""
    queries = [
        Query(f"{source} {path}", node["expr"])
        for path, node in walk_json(document)
        if isinstance(node.get("expr"), str)
    ]
    for index, variable in enumerate(document.get("templating", {}).get("list", [])):
        if variable.get("type") == "query":
            expr = variable_query(variable)
            if expr is not None:
                queries.append(Query(f"{source} $.templating.list[{index}]", expr))
    return queries


def rendered_dashboards(directory: Path = RENDERED_DIR) -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def rule_files(directory: Path = ALERTS_DIR) -> list[Path]:
    """Prometheus rule files (YAML with ``groups:``) under ``directory``, at any depth."""
    files = sorted([*directory.glob("**/*.yml"), *directory.glob("**/*.yaml")])
    return [path for path in files if _is_rule_file(yaml.safe_load(path.read_text()))]


def _is_rule_file(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("groups"), list)


def rule_queries(path: Path) -> tuple[list[Query], set[str]]:
    """A rule file's expressions, and the series names its recording rules define."""
    document = yaml.safe_load(path.read_text())
    queries, recorded = [], set()
    for group in document["groups"]:
        for rule in group.get("rules") or []:
            label = rule.get("record") or rule.get("alert")
            queries.append(
                Query(f"{path} group {group.get('name')!r} rule {label!r}", rule["expr"])
            )
            if "record" in rule:
                recorded.add(rule["record"])
    return queries, recorded


def exported_metrics() -> dict[str, set[str]]:
    """Each metric family the app exports, with the series names it puts on /metrics.

    Importing app.observability.metrics registers them. prometheus-client's own
    process/platform/GC collectors are left out: the multiprocess /metrics the
    app serves in production does not carry them (hence ``minitwit_process_*``).
    """
    import app.observability.metrics  # noqa: F401  (registers every app metric)

    defaults = {
        family.name
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR)
        for family in collector.collect()
    }
    families = {}
    for family in REGISTRY.collect():
        if family.name in defaults:
            continue
        if family.type not in _SUFFIXES:
            raise ValueError(f"{family.name}: metric type {family.type!r} not handled here")
        families[family.name] = {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return families


def exported_names() -> set[str]:
    """Every series name the app puts on /metrics."""
    return set().union(*exported_metrics().values())


def unknown_names(
    queries: Iterable[Query], exported: AbstractSet[str], recorded: AbstractSet[str] = frozenset()
) -> list[str]:
    """One message per metric name a query reads that nothing exports or records."""
    known = exported | recorded | PROMETHEUS_SYNTHETIC
    problems = []
    for query in queries:
        try:
            names = metric_names(query.expr)
        except ValueError as error:
            problems.append(f"{query.where}: {error}")
            continue
        problems.extend(
            f"{query.where}: {name} is not exported by the app nor recorded by a rule"
            for name in sorted(names - known)
        )
    return problems


def bucket_problems(queries: Iterable[Query], bounds: Mapping[str, Sequence[float]]) -> list[str]:
    """One message per ``le`` matcher that names no bucket bound of its histogram.

    Prometheus compares label values as strings, so the bound must be written
    the way prometheus-client writes it (``le="1.0"``, not ``le="1"``).
    """
    problems = []
    for query in queries:
        for selector in selectors(query.expr):
            name = selector_name(selector)
            for matcher in selector.matchers.matchers:
                if matcher.name != "le":
                    continue
                if name is None or name not in bounds:
                    problems.append(f"{query.where}: le matcher on {name}, not a known histogram")
                elif matcher.op != promql_parser.MatchOp.Equal:
                    problems.append(f'{query.where}: le matcher on {name} must be le="<bound>"')
                elif matcher.value not in {floatToGoString(b) for b in (*bounds[name], math.inf)}:
                    problems.append(
                        f'{query.where}: le="{matcher.value}" is not a bucket bound of {name}'
                    )
    return problems
