"""Build MiniTwit's Prometheus rules: ``alerts/rules/*.yml`` are generated from this file.

    .venv/bin/python alerts/generate.py          # rewrite alerts/rules/*.yml
    .venv/bin/python alerts/generate.py --check  # exit 1 when they differ from this file

Why generated: the SLO rules repeat one pattern for seven windows and two
objectives, and every alert carries the same kind of annotations (runbook and
dashboard links); writing them by hand invites a typo in one copy. The YAML
is committed so that Prometheus, promtool and a reviewer read plain rule
files, and ``tests/test_alerts.py`` fails when they drift from this source.

Metric names come from ``app/observability/metrics.py``. Two kinds of
requests are left out of every request-based rule: ``/metrics`` (Prometheus
itself) and ``/health`` (load balancers and Compose health checks). They are
probes, not users, and at night they would otherwise be most of the traffic.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES_DIR = HERE / "rules"
RECORDING_FILE = RULES_DIR / "minitwit-recording.yml"
ALERTS_FILE = RULES_DIR / "minitwit-alerts.yml"

# Where the links in the annotations point. Change them here for a deployment
# (the repository's web address, the Grafana that serves dashboards/), then
# run this script.
RUNBOOK_BASE_URL = "https://github.com/minitwit/minitwit/blob/main/alerts/runbooks"
GRAFANA_URL = "http://localhost:3000"
DASHBOARDS = ("minitwit-overview", "minitwit-domain", "minitwit-slo", "minitwit-runtime")

JOB = "minitwit"  # the scrape job of the app's replicas (compose/prometheus/prometheus.yml)
PROMETHEUS_JOB = "prometheus"  # Prometheus scraping itself

PROBES = 'route!~"/metrics|/health"'
HTTP = f'job="{JOB}", {PROBES}'
API = f'job="{JOB}", app="api", {PROBES}'
# The simulator's routes (shared/spec/simulator-api.md); all but GET /latest record ?latest=.
SIMULATOR = f'job="{JOB}", app="api", route=~"/latest|/register|/msgs.*|/fllws.*"'
SIMULATOR_ACTIONS = f'job="{JOB}", app="api", route=~"/register|/msgs.*|/fllws.*"'
# The simulator's requests that need its credentials (all but /register and /latest).
SIMULATOR_SIGNED = f'job="{JOB}", app="api", route=~"/msgs.*|/fllws.*"'

# --- The SLOs (30 days) ----------------------------------------------------------
SLO_PERIOD = "30d"
AVAILABILITY_OBJECTIVE = 0.995  # API requests answered without a 5xx
LATENCY_OBJECTIVE = 0.99  # API requests answered within the simulator's timeout
LATENCY_THRESHOLD = "0.3"  # seconds; a bucket bound of minitwit_http_request_duration_seconds
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnAlert:
    """Multiwindow, multi-burn-rate alerting (Google SRE workbook, "Alerting on SLOs")."""

    severity: str
    windows: tuple[tuple[str, str, float], ...]  # (long window, short window, burn rate)
    for_: str


FAST_BURN = BurnAlert("critical", (("1h", "5m", 14.4), ("6h", "30m", 6.0)), "2m")
SLOW_BURN = BurnAlert("warning", (("1d", "2h", 3.0), ("3d", "6h", 1.0)), "15m")


def budget_lasts(burn_rate: float) -> str:
    """How long the whole 30-day budget lasts at a burn rate, in words, for descriptions."""
    hours = 30 * 24 / burn_rate
    return f"at {burn_rate:g}x the whole {SLO_PERIOD} budget is gone in {hours:.0f} h"


# --- Rule builders -----------------------------------------------------------------


def runbook(alert: str) -> str:
    return f"{RUNBOOK_BASE_URL}/{alert}.md"


def dashboard(uid: str) -> str:
    assert uid in DASHBOARDS, uid
    return f"{GRAFANA_URL}/d/{uid}"


@dataclass
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    dashboard: str
    for_: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": self.name, "expr": block(self.expr)}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity, "service": JOB, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": runbook(self.name),
            "dashboard_url": dashboard(self.dashboard),
        }
        return rule


def block(expr: str) -> str:
    """PromQL always as a YAML block (``|``): long selectors stay on one line, unfolded."""
    return expr if expr.endswith("\n") else expr + "\n"


def record(name: str, expr: str, **labels: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": name, "expr": block(expr)}
    if labels:
        rule["labels"] = labels
    return rule


def or_zero(part: str, total: str) -> str:
    """``part / total``, 0 rather than absent while ``part`` has no series (nothing failed yet)."""
    return f"(\n  {part}\n  or 0 * {total}\n)\n/\n{total}\n"


def errors_ratio(window: str) -> str:
    """Share of API requests answered 5xx."""
    total = f"sum by (job) (rate(minitwit_http_requests_total{{{API}}}[{window}]))"
    failed = f'sum by (job) (rate(minitwit_http_requests_total{{{API}, status=~"5.."}}[{window}]))'
    return or_zero(failed, total)


def slow_ratio(window: str) -> str:
    """Share of API requests slower than the latency threshold."""
    fast = (
        "sum by (job) (rate(minitwit_http_request_duration_seconds_bucket"
        f'{{{API}, le="{LATENCY_THRESHOLD}"}}[{window}]))'
    )
    total = f"sum by (job) (rate(minitwit_http_request_duration_seconds_count{{{API}}}[{window}]))"
    return f"1 - (\n  {fast}\n  /\n  {total}\n)\n"


SLOS = {
    # name: (recorded ratio series prefix, objective, what a bad request did)
    "Availability": ("job:minitwit_slo_api_errors", AVAILABILITY_OBJECTIVE, "failed (5xx)"),
    "Latency": (
        "job:minitwit_slo_api_slow",
        LATENCY_OBJECTIVE,
        f"took longer than {LATENCY_THRESHOLD} s",
    ),
}


def recording_groups() -> list[dict[str, Any]]:
    availability = [
        record("job:minitwit_replicas_up:count", f'count by (job) (up{{job="{JOB}"}} == 1)'),
    ]
    http = [
        record(
            "job_app:minitwit_http_requests:rate5m",
            f"sum by (job, app) (rate(minitwit_http_requests_total{{{HTTP}}}[5m]))",
        ),
        record(
            "job_app:minitwit_http_requests_5xx:rate5m",
            f'sum by (job, app) (rate(minitwit_http_requests_total{{{HTTP}, status=~"5.."}}[5m]))',
        ),
        record(
            "job_app:minitwit_http_requests_5xx:ratio_rate5m",
            or_zero(
                "job_app:minitwit_http_requests_5xx:rate5m",
                "job_app:minitwit_http_requests:rate5m",
            ),
        ),
        record(
            "job_app_le:minitwit_http_request_duration_seconds_bucket:rate5m",
            "sum by (job, app, le) "
            f"(rate(minitwit_http_request_duration_seconds_bucket{{{HTTP}}}[5m]))",
        ),
        record(
            "job_app:minitwit_http_request_duration_seconds:p99_rate5m",
            "histogram_quantile(0.99, "
            "job_app_le:minitwit_http_request_duration_seconds_bucket:rate5m)",
        ),
        record(
            "job_app:minitwit_http_request_duration_seconds:p50_rate5m",
            "histogram_quantile(0.5, "
            "job_app_le:minitwit_http_request_duration_seconds_bucket:rate5m)",
        ),
    ]
    domain = [
        record(
            "job_app:minitwit_user_not_found:rate5m",
            f'sum by (job, app) (rate(minitwit_user_not_found_total{{job="{JOB}"}}[5m]))',
        ),
        record(
            "job:minitwit_api_user_not_found:ratio_rate5m",
            or_zero(
                'sum by (job) (job_app:minitwit_user_not_found:rate5m{app="api"})',
                'sum by (job) (job_app:minitwit_http_requests:rate5m{app="api"})',
            ),
        ),
        record(
            "job:minitwit_messages_posted:rate5m",
            f'sum by (job) (rate(minitwit_messages_posted_total{{job="{JOB}"}}[5m]))',
        ),
        record(
            "job:minitwit_simulator_requests:rate5m",
            f"sum by (job) (rate(minitwit_http_requests_total{{{SIMULATOR}}}[5m]))",
        ),
        record(
            "job:minitwit_simulator_latest_id:max",
            f'max by (job) (minitwit_simulator_latest_id{{job="{JOB}"}})',
        ),
        record(
            "job_kind:minitwit_errors:rate5m",
            f'sum by (job, kind) (rate(minitwit_errors_total{{job="{JOB}"}}[5m]))',
        ),
        record(
            "job:minitwit_database_errors:ratio_rate5m",
            or_zero(
                'sum by (job) (job_kind:minitwit_errors:rate5m{kind="database_unavailable"})',
                "sum by (job) (job_app:minitwit_http_requests:rate5m)",
            ),
        ),
    ]
    slo = [
        record(
            "minitwit:slo_objective:ratio", f"vector({AVAILABILITY_OBJECTIVE})", slo="availability"
        ),
        record("minitwit:slo_objective:ratio", f"vector({LATENCY_OBJECTIVE})", slo="latency"),
    ]
    for window in SLO_WINDOWS:
        slo.append(record(f"job:minitwit_slo_api_errors:ratio_rate{window}", errors_ratio(window)))
        slo.append(record(f"job:minitwit_slo_api_slow:ratio_rate{window}", slow_ratio(window)))
    budget = [
        record(f"job:minitwit_slo_api_errors:ratio_rate{SLO_PERIOD}", errors_ratio(SLO_PERIOD)),
        record(f"job:minitwit_slo_api_slow:ratio_rate{SLO_PERIOD}", slow_ratio(SLO_PERIOD)),
    ]
    return [
        {"name": "minitwit.availability.rules", "rules": availability},
        {"name": "minitwit.http.rules", "rules": http},
        {"name": "minitwit.domain.rules", "rules": domain},
        {"name": "minitwit.slo.rules", "rules": slo},
        # The 30-day ratios feed the SLO dashboard's budget panels only: a minute is plenty.
        {"name": "minitwit.slo-budget.rules", "interval": "1m", "rules": budget},
    ]


def burn_alert(slo: str, burn: BurnAlert) -> Alert:
    prefix, objective, bad = SLOS[slo]
    budget = round(1 - objective, 6)
    pairs = []
    for long, short, rate in burn.windows:
        threshold = f"({rate:g} * {budget:g})"
        pairs.append(
            f"(\n  {prefix}:ratio_rate{long} > {threshold}\n"
            f"  and\n  {prefix}:ratio_rate{short} > {threshold}\n)"
        )
    speed = "Fast" if burn.severity == "critical" else "Slow"
    windows = " or ".join(f"{long}/{short} at {rate:g}x" for long, short, rate in burn.windows)
    long_windows = " or ".join(long for long, _, _ in burn.windows)
    first_rate = burn.windows[0][2]
    return Alert(
        name=f"MiniTwit{slo}BudgetBurn{speed}",
        expr="\nor\n".join(pairs) + "\n",
        for_=burn.for_,
        severity=burn.severity,
        labels={"slo": slo.lower()},
        summary=(
            f"The {slo.lower()} error budget is burning "
            f"{'fast' if speed == 'Fast' else 'steadily'}."
        ),
        description=(
            f"{{{{ $value | humanizePercentage }}}} of API requests {bad} over the last "
            f"{long_windows} (and still in the shorter window). The SLO allows "
            f"{budget:.1%} over {SLO_PERIOD}; this alert fires at burn rates {windows} "
            f"({budget_lasts(first_rate)})."
        ),
        dashboard="minitwit-slo",
    )


def alerts() -> list[dict[str, Any]]:
    availability = [
        Alert(
            name="MiniTwitDown",
            expr=f'(count(up{{job="{JOB}"}} == 1) or on () vector(0)) == 0\n',
            for_="1m",
            severity="critical",
            summary="MiniTwit is down: no replica answers.",
            description=(
                "{{ $value }} MiniTwit replicas have answered Prometheus's scrapes for over a "
                "minute: every target fails, or none is discovered at all. Users and the "
                "simulator get connection errors."
            ),
            dashboard="minitwit-overview",
        ),
        Alert(
            name="MiniTwitReplicaDown",
            # Two shapes: a target that fails its scrapes (static targets, a hung
            # process), or a target that vanished: Compose's DNS stops listing a
            # container once it stopped, so fewer replicas answer than did lately.
            expr=(
                f'up{{job="{JOB}"}} == 0\n'
                "or\n(\n"
                "  job:minitwit_replicas_up:count\n"
                "    < max_over_time(job:minitwit_replicas_up:count[15m])\n"
                f'  unless on (job) (up{{job="{JOB}"}} == 0)\n'
                ")\n"
            ),
            for_="3m",
            severity="warning",
            summary="A MiniTwit replica is down.",
            description=(
                "{{ with $labels.instance }}{{ . }} has failed every scrape for 3 minutes "
                "(up = {{ $value }}){{ else }}Only {{ $value }} replicas have answered for 3 "
                "minutes, fewer than within the last 15 minutes: one is gone from service "
                "discovery{{ end }}. The remaining replicas carry its traffic."
            ),
            dashboard="minitwit-overview",
        ),
        Alert(
            name="MiniTwitNoScrapeData",
            expr=(
                f'(up{{job="{JOB}"}} == 1)\n'
                f'  unless on (job, instance) minitwit_build_info{{job="{JOB}"}}\n'
                f'or\nabsent(up{{job="{JOB}"}})\n'
            ),
            for_="10m",
            severity="warning",
            summary="Prometheus gets no MiniTwit metrics.",
            description=(
                "{{ with $labels.instance }}{{ . }} answers its scrapes but exposes none of "
                "MiniTwit's metrics{{ else }}Prometheus discovers no MiniTwit target at "
                "all{{ end }} (value {{ $value }}): every other MiniTwit alert is blind."
            ),
            dashboard="minitwit-overview",
        ),
        Alert(
            name="Watchdog",
            expr=f'up{{job="{PROMETHEUS_JOB}"}} == 1\n',
            severity="none",
            summary="Alerting works: this alert always fires while Prometheus is healthy.",
            description=(
                "A heartbeat (value {{ $value }}): Prometheus scrapes itself, evaluates rules "
                "and reaches Alertmanager, which forwards this to the heartbeat receiver. "
                "When the heartbeat stops, the monitoring itself is down."
            ),
            dashboard="minitwit-overview",
        ),
    ]
    http = [
        Alert(
            name="MiniTwitHighErrorRatio",
            expr=(
                "job_app:minitwit_http_requests_5xx:ratio_rate5m > 0.05\n"
                "and\njob_app:minitwit_http_requests:rate5m > 0.05\n"
            ),
            for_="5m",
            severity="warning",
            summary="Many MiniTwit {{ $labels.app }} requests fail with 5xx.",
            description=(
                "{{ $value | humanizePercentage }} of {{ $labels.app }} requests were answered "
                "with a 5xx over the last 5 minutes (threshold 5%)."
            ),
            dashboard="minitwit-overview",
        ),
        Alert(
            name="MiniTwitHighLatency",
            expr=(
                'job_app:minitwit_http_request_duration_seconds:p99_rate5m{app="api"} > 0.3\n'
                'and\njob_app:minitwit_http_requests:rate5m{app="api"} > 0.05\n'
            ),
            for_="10m",
            severity="warning",
            summary="MiniTwit API p99 latency is above the simulator's 0.3 s timeout.",
            description=(
                "The 99th percentile of API response times over 5 minutes is "
                "{{ $value | humanizeDuration }}; the simulator gives up on a request after "
                "0.3 s and counts it as an error."
            ),
            dashboard="minitwit-overview",
        ),
        Alert(
            name="MiniTwitDatabaseErrors",
            expr="job:minitwit_database_errors:ratio_rate5m > 0.01\n",
            for_="5m",
            severity="warning",
            summary="MiniTwit requests fail because the database is unavailable.",
            description=(
                "{{ $value | humanizePercentage }} of requests over the last 5 minutes failed "
                "with the database unavailable (down, locked or too slow; threshold 1%)."
            ),
            dashboard="minitwit-runtime",
        ),
    ]
    slo = [
        burn_alert(slo, burn)
        for slo in ("Availability", "Latency")
        for burn in (FAST_BURN, SLOW_BURN)
    ]
    simulator = [
        Alert(
            name="MiniTwitSimulatorSilent",
            expr=(
                "max_over_time(job:minitwit_simulator_requests:rate5m[1d]) > 0\n"
                "and on ()\n"
                f"(sum(rate(minitwit_http_requests_total{{{SIMULATOR}}}[10m]))"
                " or on () vector(0)) == 0\n"
            ),
            for_="5m",
            severity="warning",
            summary="The simulator has gone silent.",
            description=(
                "No simulator request has arrived for 10 minutes, although it sent up to "
                '{{ $value | printf "%.2f" }} requests/s within the last day. Either the API is '
                "unreachable from outside or the simulator stopped."
            ),
            dashboard="minitwit-domain",
        ),
        Alert(
            name="MiniTwitSimulatorStalled",
            # Two shapes: `latest` stays put, or (wrong credentials, while the
            # registrations, which need none, still move `latest`) not one request
            # that needs the credentials succeeds.
            expr=(
                "(\n"
                f"  sum(rate(minitwit_http_requests_total{{{SIMULATOR_ACTIONS}}}[10m])) > 0\n"
                "  and on ()\n"
                "  (changes(job:minitwit_simulator_latest_id:max[10m]) or on () vector(0)) == 0\n"
                ")\nor on ()\n(\n"
                f"  sum(rate(minitwit_http_requests_total{{{SIMULATOR_SIGNED}}}[10m])) > 0\n"
                "  unless on ()\n"
                f"  sum(rate(minitwit_http_requests_total{{{SIMULATOR_SIGNED}, "
                'status=~"2.."}[10m])) > 0\n'
                ")\n"
            ),
            for_="5m",
            severity="warning",
            summary="Simulator requests arrive but do not count.",
            description=(
                'The simulator sends {{ $value | printf "%.2f" }} requests/s, yet for 10 minutes '
                "the `latest` id it reads back has not changed, or none of its requests that "
                "need credentials succeeded: they are refused before they count (credentials?) "
                "or recording `latest` fails."
            ),
            dashboard="minitwit-domain",
        ),
        Alert(
            name="MiniTwitUsersNotFoundSpike",
            expr=(
                "job:minitwit_api_user_not_found:ratio_rate5m > 0.05\n"
                'and on (job)\njob_app:minitwit_user_not_found:rate5m{app="api"} > 0.02\n'
            ),
            for_="10m",
            severity="warning",
            summary="Many API requests name users that do not exist.",
            description=(
                "{{ $value | humanizePercentage }} of API requests over 5 minutes named an "
                "unknown user (threshold 5%): registrations are being lost, or data went "
                "missing."
            ),
            dashboard="minitwit-domain",
        ),
        Alert(
            name="MiniTwitNoMessagesPosted",
            expr=(
                "max_over_time(job:minitwit_messages_posted:rate5m[1d]) > 0\n"
                "and on ()\n"
                f'(sum(increase(minitwit_messages_posted_total{{job="{JOB}"}}[1h])) '
                "or on () vector(0)) == 0\n"
            ),
            for_="5m",
            severity="warning",
            summary="No message has been posted for an hour.",
            description=(
                "Nobody posted a message in the last hour, although up to "
                '{{ $value | printf "%.2f" }} messages/s were posted within the last day.'
            ),
            dashboard="minitwit-domain",
        ),
    ]
    return [
        {"name": "minitwit.availability.alerts", "rules": [a.rule() for a in availability]},
        {"name": "minitwit.http.alerts", "rules": [a.rule() for a in http]},
        {"name": "minitwit.slo.alerts", "rules": [a.rule() for a in slo]},
        {"name": "minitwit.simulator.alerts", "rules": [a.rule() for a in simulator]},
    ]


# --- Output ------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (PromQL), so the files read like hand-written ones."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = (
    "# Generated by alerts/generate.py: edit that file, then run\n"
    "#   .venv/bin/python alerts/generate.py\n"
    "# Tests: alerts/tests/*.yml (promtool), tests/test_alerts.py.\n"
)


def render(groups: list[dict[str, Any]]) -> str:
    body = yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def outputs() -> dict[Path, str]:
    return {RECORDING_FILE: render(recording_groups()), ALERTS_FILE: render(alerts())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = False
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        stale = True
        if args.check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    str(path),
                    "generated",
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
