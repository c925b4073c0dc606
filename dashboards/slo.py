"""SLO view: the simulator API's availability and latency against their objectives.

Objectives, over a rolling 30-day window, for API requests (``app="api"``;
the probes ``/metrics`` and ``/health`` left out, as in the alert rules):

- availability: 99.5 % of requests are answered without a 5xx status;
- latency: 99 % of requests are answered within 0.3 s (the histogram bucket
  ``le="0.3"``, the simulator's timeout).

Error budget remaining is ``1 - bad_ratio(30d) / (1 - objective)``: 100 % when
nothing went wrong, 0 when the budget is spent, negative past it. A burn rate
is ``bad_ratio(window) / (1 - objective)``: 1 spends the budget in exactly 30
days; the alerts fire at 14.4 over 1 h, 6 over 6 h, 3 over 1 d, 1 over 3 d.

The bad ratios per window are the recording rules the burn-rate alerts use
(``job:minitwit_slo_api_errors:ratio_rate<window>``, alerts/rules), so this
view shows exactly what the alerts evaluate, and a 30-day window costs one
recorded series instead of 30 days of raw samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafanalib.core import Dashboard, Stat, TimeSeries

from dashboards.common import (
    NOT_PROBES,
    RATE,
    Query,
    Section,
    dashboard,
    graphs,
    stat,
    stats,
    steps,
    timeseries,
)

UID = "minitwit-slo"

WINDOW = "30d"
AVAILABILITY_OBJECTIVE = 0.995
LATENCY_OBJECTIVE = 0.99
LATENCY_THRESHOLD = "0.3"  # seconds; must be a bucket bound of the request duration histogram
# (window, the burn rate the alerts fire at over it)
BURN_WINDOWS = (("1h", 14.4), ("6h", 6.0), ("1d", 3.0), ("3d", 1.0))

# The requests the SLOs count: the simulator API, without the probes.
SLI = f'app="api",{NOT_PROBES}'
REQUESTS = f"minitwit_http_requests_total{{{SLI}}}"
ERRORS = f'minitwit_http_requests_total{{{SLI},status=~"5.."}}'
COUNT = f"minitwit_http_request_duration_seconds_count{{{SLI}}}"
FAST = f'minitwit_http_request_duration_seconds_bucket{{{SLI},le="{LATENCY_THRESHOLD}"}}'


def _budget(objective: float) -> str:
    """The allowed bad share, printed exactly (0.005, not 0.0050000000000000044)."""
    return f"{round(1 - objective, 10):g}"


@dataclass(frozen=True)
class Objective:
    """One objective and the panels it gets: attainment, budget, burn rates."""

    name: str
    good: str  # what a good request is, after "API requests ..."
    objective: float
    recorded: str  # the recording rules' prefix; the bad ratio is <prefix>:ratio_rate<window>
    # Bad and all requests over the dashboard's range, for the one panel no rule records.
    bad_in_range: str
    all_in_range: str

    @property
    def budget(self) -> str:
        return _budget(self.objective)

    @property
    def percent(self) -> str:
        return f"{self.objective * 100:g} %"

    def bad_ratio(self, window: str) -> str:
        """The recorded bad-request ratio over ``window`` (one series per scrape job)."""
        return f"max({self.recorded}:ratio_rate{window})"

    def bad_ratio_over_range(self) -> str:
        """The bad ratio over the dashboard's range, from the raw counters; 0 without traffic."""
        return f"{self.bad_in_range} / clamp_min({self.all_in_range}, 1)"

    def attainment(self, ratio: str, title: str, when: str) -> Stat:
        return stat(
            title,
            f"Share of API requests {self.good} {when}. Objective: {self.percent}.",
            "percentunit",
            [Query(f"1 - {ratio}")],
            thresholds=steps("red", (self.objective, "green")),
            decimals=3,
        )

    def budget_remaining(self) -> Stat:
        return stat(
            f"{self.name} error budget remaining",
            f"How much of the 30-day error budget ({self.budget} of requests not {self.good}) "
            "is left: 100 % when nothing failed, 0 when spent, negative past it.",
            "percentunit",
            [Query(f"1 - {self.bad_ratio(WINDOW)} / {self.budget}")],
            thresholds=steps("red", (0, "orange"), (0.25, "green")),
            decimals=1,
        )

    def burn_rate(self, window: str, alert_at: float) -> Stat:
        return stat(
            f"{self.name} burn rate, {window}",
            f"Bad-request ratio over the last {window} divided by the budget ({self.budget}); "
            f"1 spends the 30-day budget in exactly 30 days. Red at {alert_at:g}, where the "
            f"burn-rate alert for the {window} window fires.",
            "suffix:x",
            [Query(f"{self.bad_ratio(window)} / {self.budget}")],
            thresholds=steps("green", (1, "yellow"), (alert_at, "red")),
            decimals=2,
        )

    def burn_rates_over_time(self) -> TimeSeries:
        return timeseries(
            f"{self.name} burn rate over time",
            f"Burn rate over 1 h, 6 h, 1 d and 3 d windows (bad ratio / {self.budget}). "
            "Dashed lines: 1 (the budget lasts 30 days), 3, 6 and 14.4 (alert thresholds).",
            "suffix:x",
            [
                Query(f"{self.bad_ratio(window)} / {self.budget}", window)
                for window, _ in BURN_WINDOWS
            ],
            thresholds=steps(
                "green", (1, "yellow"), (3, "orange"), (6, "dark-orange"), (14.4, "red")
            ),
        )

    def budget_over_time(self) -> TimeSeries:
        return timeseries(
            f"{self.name} error budget remaining over time",
            "The 30-day error budget left at each point in time (rolling window).",
            "percentunit",
            [Query(f"1 - {self.bad_ratio(WINDOW)} / {self.budget}", "budget remaining")],
            thresholds=steps("red", (0, "green")),
            min_value=None,
            max_value=1,
        )

    def section(self, drill_down: TimeSeries) -> Section:
        return Section(
            f"{self.name}: {self.percent} of API requests {self.good}",
            [
                stats(
                    self.attainment(
                        self.bad_ratio(WINDOW), f"{self.name}, 30 days", "over the last 30 days"
                    ),
                    self.budget_remaining(),
                    self.attainment(
                        f"({self.bad_ratio_over_range()})",
                        f"{self.name}, selected range",
                        "in the selected time range",
                    ),
                ),
                stats(*(self.burn_rate(window, alert_at) for window, alert_at in BURN_WINDOWS)),
                graphs(self.burn_rates_over_time(), self.budget_over_time(), drill_down),
            ],
        )


AVAILABILITY = Objective(
    name="Availability",
    good="answered without a 5xx",
    objective=AVAILABILITY_OBJECTIVE,
    recorded="job:minitwit_slo_api_errors",
    bad_in_range=f"(sum(increase({ERRORS}[$__range])) or vector(0))",
    all_in_range=f"sum(increase({REQUESTS}[$__range]))",
)
LATENCY = Objective(
    name="Latency",
    good=f"answered within {LATENCY_THRESHOLD} s",
    objective=LATENCY_OBJECTIVE,
    recorded="job:minitwit_slo_api_slow",
    # Slow = all minus fast; clamp_min absorbs the rounding of two extrapolated increases.
    bad_in_range=(
        f"clamp_min(sum(increase({COUNT}[$__range])) - sum(increase({FAST}[$__range])), 0)"
    ),
    all_in_range=f"sum(increase({COUNT}[$__range]))",
)


def build() -> Dashboard:
    availability = AVAILABILITY.section(
        timeseries(
            "API 5xx responses by route",
            "Which routes spend the availability budget: 5xx responses per second by "
            "method, route template and status.",
            "reqps",
            [
                Query(
                    f"sum by (method, route, status) (rate({ERRORS}[{RATE}]))",
                    "{{method}} {{route}} {{status}}",
                )
            ],
        )
    )
    latency = LATENCY.section(
        timeseries(
            f"API requests slower than {LATENCY_THRESHOLD} s by route",
            "Which routes spend the latency budget: the share of each route's requests "
            f"that took longer than {LATENCY_THRESHOLD} s.",
            "percentunit",
            [
                Query(
                    f"(sum by (method, route) (rate({COUNT}[{RATE}]))"
                    f" - sum by (method, route) (rate({FAST}[{RATE}])))"
                    f" / sum by (method, route) (rate({COUNT}[{RATE}]))",
                    "{{method}} {{route}}",
                )
            ],
            thresholds=steps("green", (float(_budget(LATENCY_OBJECTIVE)), "red")),
        )
    )
    return dashboard(
        uid=UID,
        title="MiniTwit / SLOs",
        module="slo",
        description=(
            f"Simulator API objectives over {WINDOW}: availability "
            f"{AVAILABILITY_OBJECTIVE * 100:g} % (non-5xx), latency "
            f"{LATENCY_OBJECTIVE * 100:g} % within {LATENCY_THRESHOLD} s; error budgets "
            "and burn rates, from the same recording rules the alerts use."
        ),
        sections=[availability, latency],
        time_from="now-7d",
    )
