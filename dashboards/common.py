"""What every MiniTwit dashboard shares: the datasource variable, panel helpers, layout.

The helpers make the house rules hard to break: every panel gets a title, a
description and a unit, every query goes to the ``$datasource`` variable, and
panel ids and grid positions follow from the order panels are listed in, so
rendering is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import attr
from grafanalib.core import (
    GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    Annotations,
    Dashboard,
    DashboardLink,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    Template,
    Templating,
    Time,
    TimeSeries,
)

TAG = "minitwit"
# Dashboards are generated: the JSON says so, and Grafana is told not to offer saving edits.
GENERATED_NOTE = (
    "Generated from dashboards/{module}.py; edit there and run `python -m dashboards.render`."
)

# Every panel, query, annotation and query variable reads from this variable.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
# Probes (Prometheus's scrapes, health checks) are not users: error-ratio, latency and
# SLO panels leave them out, as the alert rules do (alerts/generate.py), so that a
# panel an alert links to shows the number the alert fired on.
NOT_PROBES = 'route!~"/metrics|/health"'
GRID_WIDTH = 24
STAT_HEIGHT = 4
GRAPH_HEIGHT = 8

Steps = list[dict[str, Any]]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel; ``legend`` is Grafana's legend format."""

    expr: str
    legend: str = ""


def steps(base: str, *above: tuple[float, str]) -> Steps:
    """Threshold steps: the ``base`` colour, then each (value, colour) from that value up."""
    return [{"color": base, "value": None}] + [
        {"color": color, "value": value} for value, color in above
    ]


def _targets(queries: Sequence[Query], instant: bool) -> list[dict[str, Any]]:
    if not queries:
        raise ValueError("a panel needs at least one query")
    if len(queries) > 26:
        raise ValueError("at most 26 queries per panel (refIds A-Z)")
    return [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": query.expr,
            "instant": instant,
            "legendFormat": query.legend or "__auto",
            "range": not instant,
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(queries)
    ]


def _require(title: str, description: str, unit: str) -> None:
    if not title.strip() or not description.strip() or not unit.strip():
        raise ValueError(f"panel {title!r}: title, description and unit are all required")


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    thresholds: Steps | None = None,
    threshold_style: str = "dashed",
    stack: bool = False,
    min_value: int | None = 0,
    max_value: int | None = None,
    overrides: Sequence[dict[str, Any]] = (),
    min_interval: str | None = None,
    max_points: int | None = None,
) -> TimeSeries:
    """A time series panel; ``thresholds`` are drawn as lines (``threshold_style``).

    ``min_interval`` and ``max_points`` bound the number of steps for expensive
    queries (30-day windows); by default Grafana picks a step per pixel.
    """
    _require(title, description, unit)
    return TimeSeries(
        title=title,
        description=description,
        unit=unit,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=False),
        thresholds=thresholds or steps("green"),
        thresholdsStyleMode=threshold_style if thresholds else "off",
        stacking={"group": "A", "mode": "normal"} if stack else {"group": "A", "mode": "none"},
        fillOpacity=20 if stack else 10,
        valueMin=min_value,
        valueMax=max_value,
        legendDisplayMode="table",
        legendPlacement="bottom",
        legendCalcs=["mean", "max", "lastNotNull"],
        tooltipMode="multi",
        tooltipSort="desc",
        overrides=list(overrides),
        interval=min_interval,
        maxDataPoints=max_points,
    )


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    thresholds: Steps | None = None,
    decimals: int | None = None,
    text_mode: str = "auto",
    no_value: str = "no data",
) -> Stat:
    """A single-value panel showing the latest value of an instant query."""
    _require(title, description, unit)
    return Stat(
        title=title,
        description=description,
        format=unit,
        dataSource=DATASOURCE,
        targets=_targets(queries, instant=True),
        thresholds=thresholds or steps("green"),
        decimals=decimals,
        textMode=text_mode,
        color={"mode": "thresholds"},
        colorMode="value",
        graphMode="none",
        reduceCalc="lastNotNull",
        noValue=no_value,
    )


@dataclass(frozen=True)
class Line:
    """Panels side by side, sharing the grid's 24 columns equally."""

    panels: Sequence[Panel]
    height: int = GRAPH_HEIGHT


def stats(*panels: Panel) -> Line:
    return Line(panels, STAT_HEIGHT)


def graphs(*panels: Panel) -> Line:
    return Line(panels, GRAPH_HEIGHT)


@dataclass(frozen=True)
class Section:
    """A titled row of the dashboard and the lines of panels under it."""

    title: str
    lines: Sequence[Line] = field(default_factory=tuple)


def layout(sections: Iterable[Section]) -> list[Panel]:
    """Place rows and panels top to bottom, and number them in that order."""
    placed: list[Panel] = []
    y = 0
    for section in sections:
        placed.append(
            RowPanel(
                title=section.title, dataSource=DATASOURCE, gridPos=GridPos(h=1, w=24, x=0, y=y)
            )
        )
        y += 1
        for line in section.lines:
            count = len(line.panels)
            if not 1 <= count <= GRID_WIDTH:
                raise ValueError(f"a line holds 1 to {GRID_WIDTH} panels, not {count}")
            width, x = GRID_WIDTH // count, 0
            for index, panel in enumerate(line.panels):
                w = GRID_WIDTH - x if index == count - 1 else width
                placed.append(attr.evolve(panel, gridPos=GridPos(h=line.height, w=w, x=x, y=y)))
                x += w
            y += line.height
    return [attr.evolve(panel, id=number) for number, panel in enumerate(placed, start=1)]


DATASOURCE_VARIABLE = Template(
    name="datasource",
    label="Prometheus",
    query="prometheus",
    type="datasource",
    default="Prometheus",
    includeAll=False,
)


def query_variable(name: str, label: str, metric: str, label_name: str) -> dict[str, Any]:
    """A multi-value variable listing one label's values of a metric, "All" by default."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": f"label_values({metric}, {label_name})",
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": f"label_values({metric}, {label_name})",
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


# Marks on every time axis: a new version showing up, an instance restarting.
ANNOTATIONS = Annotations(
    list=[
        {
            "datasource": DATASOURCE,
            "enable": True,
            "expr": (
                "count by (version, revision) (minitwit_build_info)"
                " unless count by (version, revision) (minitwit_build_info offset 10m)"
            ),
            "hide": False,
            "iconColor": "blue",
            "name": "Deploys",
            "step": "1m",
            "tagKeys": "version",
            "textFormat": "revision {{revision}}",
            "titleFormat": "Deployed {{version}}",
        },
        {
            "datasource": DATASOURCE,
            "enable": True,
            "expr": "count by (instance) (changes(minitwit_start_time_seconds[2m]) > 0)",
            "hide": False,
            "iconColor": "orange",
            "name": "Restarts",
            "step": "1m",
            "tagKeys": "instance",
            "textFormat": "",
            "titleFormat": "Restart of {{instance}}",
        },
    ]
)


def dashboard(
    *,
    uid: str,
    title: str,
    module: str,
    description: str,
    sections: Iterable[Section],
    variables: Sequence[dict[str, Any]] = (),
    time_from: str = "now-6h",
) -> Dashboard:
    """A MiniTwit dashboard: tagged, linked to its siblings, with a stable uid."""
    return Dashboard(
        uid=uid,
        title=title,
        description=f"{description} {GENERATED_NOTE.format(module=module)}",
        tags=[TAG],
        editable=False,
        graphTooltip=GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        refresh="1m",
        schemaVersion=39,
        time=Time(time_from, "now"),
        timezone="utc",
        annotations=ANNOTATIONS,
        links=[
            DashboardLink(
                title="MiniTwit",
                type="dashboards",
                tags=[TAG],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
            )
        ],
        templating=Templating(list=[DATASOURCE_VARIABLE, *variables]),
        panels=layout(sections),
    )
