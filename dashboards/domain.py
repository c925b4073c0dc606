"""Simulator and domain activity: messages, follows, registrations, unknown users, latest id."""

from __future__ import annotations

from grafanalib.core import Dashboard, Stat

from dashboards.common import RATE, Query, Section, dashboard, graphs, stat, stats, timeseries

UID = "minitwit-domain"

API_REQUESTS = 'minitwit_http_requests_total{app="api"}'


def _total_in_range(title: str, metric: str, what: str) -> Stat:
    return stat(
        title,
        f"{what} in the selected time range, both surfaces (web UI and simulator API).",
        "short",
        [Query(f"sum(increase({metric}[$__range]))")],
        decimals=0,
        no_value="0",
    )


def _per_minute(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[{RATE}])) * 60"


def build() -> Dashboard:
    totals = stats(
        _total_in_range("Messages posted", "minitwit_messages_posted_total", "Messages posted"),
        _total_in_range("Registrations", "minitwit_registrations_total", "Users registered"),
        _total_in_range("Follows", "minitwit_follows_total", "Follow actions"),
        _total_in_range("Unfollows", "minitwit_unfollows_total", "Unfollow actions"),
        _total_in_range(
            "Users not found", "minitwit_user_not_found_total", "Requests naming an unknown user"
        ),
        stat(
            "Simulator latest id",
            "The simulator's latest processed action id, as last recorded (GET /latest).",
            "none",
            [Query("max(minitwit_simulator_latest_id)")],
            decimals=0,
        ),
    )
    activity = Section(
        "Activity",
        [
            graphs(
                timeseries(
                    "Messages per minute",
                    "Messages posted per minute, by source (web UI or simulator API).",
                    "cpm",
                    [Query(_per_minute("minitwit_messages_posted_total", "source"), "{{source}}")],
                    stack=True,
                ),
                timeseries(
                    "Follows and unfollows per minute",
                    "Follow and unfollow actions per minute, by source (web UI or simulator API).",
                    "cpm",
                    [
                        Query(_per_minute("minitwit_follows_total", "source"), "follow {{source}}"),
                        Query(
                            _per_minute("minitwit_unfollows_total", "source"), "unfollow {{source}}"
                        ),
                    ],
                ),
            ),
            graphs(
                timeseries(
                    "Registrations per minute",
                    "Users registered per minute, by source (web UI or simulator API).",
                    "cpm",
                    [Query(_per_minute("minitwit_registrations_total", "source"), "{{source}}")],
                    stack=True,
                ),
                timeseries(
                    "Users not found per minute",
                    "Requests per minute that named a user who does not exist, by surface. "
                    "The simulator sends some on purpose; a jump means users are missing "
                    "(a lost registration, a failed import).",
                    "cpm",
                    [Query(_per_minute("minitwit_user_not_found_total", "app"), "{{app}}")],
                ),
                timeseries(
                    "Web sign-ins per minute",
                    "Web UI sign-in attempts per minute, by result (ok/failed).",
                    "cpm",
                    [Query(_per_minute("minitwit_logins_total", "result"), "{{result}}")],
                    stack=True,
                ),
            ),
        ],
    )
    simulator = Section(
        "Simulator",
        [
            graphs(
                timeseries(
                    "Simulator latest id",
                    "The simulator's latest processed action id over time. A flat line while "
                    "the simulator runs means it stopped reaching us.",
                    "none",
                    [Query("max(minitwit_simulator_latest_id)", "latest id")],
                    min_value=None,
                ),
                timeseries(
                    "Simulator progress",
                    "How fast the latest action id advances, in actions per minute "
                    "(its derivative; 0 when the id stands still or is reset).",
                    "cpm",
                    [
                        Query(
                            f"clamp_min(max(deriv(minitwit_simulator_latest_id[{RATE}])) * 60, 0)",
                            "actions",
                        )
                    ],
                ),
            ),
            graphs(
                timeseries(
                    "Simulator API responses by route and status",
                    "Simulator API requests per second by method, route template and status.",
                    "reqps",
                    [
                        Query(
                            f"sum by (method, route, status) (rate({API_REQUESTS}[{RATE}]))",
                            "{{method}} {{route}} {{status}}",
                        )
                    ],
                    stack=True,
                ),
            ),
        ],
    )
    return dashboard(
        uid=UID,
        title="MiniTwit / Simulator and domain activity",
        module="domain",
        description="What users and the simulator do: messages, follows, registrations, "
        "unknown users and the simulator's progress.",
        sections=[Section("In the selected range", [totals]), activity, simulator],
    )
