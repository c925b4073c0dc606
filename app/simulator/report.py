"""What ``minitwit simulate`` prints: the final report (text or JSON) and a progress line.

The report has the throughput, latency percentiles overall, for every action
but registrations (which pay for password hashing on purpose) and per
command, every unexpected outcome grouped by kind (command, kind, status)
with its count and a first example, and the verification of the final state
when one was asked for. Latencies are the client's: from opening the
connection to the last byte of the answer.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from app.simulator.replay import LatencySummary, Outcome, OutcomeKind, ReplayResult
from app.simulator.scenario import Command

ALL = "all"
ALL_BUT_REGISTER = "all but register"


@dataclass(frozen=True)
class RunInfo:
    """How the run was made, for the report's header."""

    base_url: str
    source: str  # the scenario file, or how it was generated
    workers: int
    timeout: float
    rate: float | None = None

    @property
    def mode(self) -> str:
        pace = f", paced at {self.rate:g} actions/s" if self.rate else ""
        if self.workers == 1:
            return (
                "sequential, like the simulator (one request at a time, Connection: close, "
                f"timeout {self.timeout:g} s{pace})"
            )
        return (
            f"concurrent, {self.workers} workers (each user's actions in file order, after the "
            f"registrations they name; Connection: close, timeout {self.timeout:g} s{pace})"
        )


@dataclass(frozen=True)
class Verification:
    """The final state read back through the API, compared with the scenario's."""

    users: int  # registered users the scenario implies
    differences: list[str] = field(default_factory=list)
    error: str | None = None  # the state could not be read

    @property
    def ok(self) -> bool:
        return self.error is None and not self.differences


@dataclass(frozen=True)
class FailureGroup:
    command: Command
    kind: OutcomeKind
    status: int | None
    count: int
    example: Outcome

    @property
    def label(self) -> str:
        status = "" if self.status is None else f" {self.status}"
        return f"{self.command.value}: {self.kind.value}{status}"


def failure_groups(outcomes: Iterable[Outcome]) -> list[FailureGroup]:
    """Unexpected outcomes grouped by (command, kind, status), most frequent first."""
    counts: dict[tuple[Command, OutcomeKind, int | None], list[Outcome]] = {}
    for outcome in outcomes:
        if outcome.kind is not OutcomeKind.OK:
            counts.setdefault((outcome.command, outcome.kind, outcome.status), []).append(outcome)
    groups = [
        FailureGroup(command, kind, status, len(found), found[0])
        for (command, kind, status), found in counts.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, g.label))


@dataclass(frozen=True)
class Report:
    info: RunInfo
    result: ReplayResult
    verification: Verification | None = None

    @property
    def failures(self) -> int:
        return len(self.result.failures)

    @property
    def ok(self) -> bool:
        return self.failures == 0 and (self.verification is None or self.verification.ok)

    def latency_rows(self) -> list[tuple[str, LatencySummary]]:
        rows = [(ALL, LatencySummary.of(self.result.latencies()))]
        outcomes = self.result.outcomes
        if any(o.command is Command.REGISTER for o in outcomes) and any(
            o.command is not Command.REGISTER for o in outcomes
        ):
            others = [o.latency for o in outcomes if o.command is not Command.REGISTER]
            rows.append((ALL_BUT_REGISTER, LatencySummary.of(others)))
        rows.extend(
            (command.value, summary)
            for command, summary in self.result.latency_by_command().items()
        )
        return rows

    def to_json(self) -> dict[str, Any]:
        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1000, 3)

        verification: dict[str, Any] | None = None
        if self.verification is not None:
            verification = {
                "ok": self.verification.ok,
                "users": self.verification.users,
                "differences": self.verification.differences,
                "error": self.verification.error,
            }
        return {
            "ok": self.ok,
            "base_url": self.info.base_url,
            "scenario": self.info.source,
            "workers": self.info.workers,
            "rate": self.info.rate,
            "timeout_s": self.info.timeout,
            "actions": len(self.result.outcomes),
            "elapsed_s": round(self.result.elapsed, 3),
            "actions_per_s": round(self.result.throughput, 1)
            if self.result.outcomes and self.result.elapsed > 0
            else None,
            "unexpected": self.failures,
            "latency_ms": {
                name: {
                    "n": s.count,
                    "p50": ms(s.p50),
                    "p95": ms(s.p95),
                    "p99": ms(s.p99),
                    "max": ms(s.max),
                }
                for name, s in self.latency_rows()
            },
            "unexpected_by_kind": [
                {
                    "command": g.command.value,
                    "kind": g.kind.value,
                    "status": g.status,
                    "count": g.count,
                    "example": {"action": g.example.action_id, "detail": g.example.detail},
                }
                for g in failure_groups(self.result.outcomes)
            ],
            "verification": verification,
        }

    def to_text(self) -> str:
        result = self.result
        n = len(result.outcomes)
        lines = [
            f"minitwit simulate: {n:,} actions against {self.info.base_url}",
            f"scenario: {self.info.source}",
            f"mode: {self.info.mode}",
            "",
        ]
        rate = f"{result.throughput:,.1f} actions/s" if n and result.elapsed > 0 else "-"
        lines.append(
            f"{n:,} actions in {result.elapsed:.2f} s: {rate}; "
            f"{n - self.failures:,} as expected, {self.failures:,} unexpected"
        )
        if n:
            lines += ["", f"{'latency, ms':<18}{'n':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"]
            for name, s in self.latency_rows():
                lines.append(
                    f"{name:<18}{s.count:>8,}{s.p50 * 1000:>9.2f}{s.p95 * 1000:>9.2f}"
                    f"{s.p99 * 1000:>9.2f}{s.max * 1000:>9.2f}"
                )
        groups = failure_groups(result.outcomes)
        if groups:
            lines += ["", "unexpected outcomes, by kind:"]
            width = max(len(g.label) for g in groups)
            for g in groups:
                example = g.example.detail.replace("\n", " ")
                example = example if len(example) <= 100 else example[:97] + "..."
                lines.append(
                    f"  {g.count:>6,} x {g.label:<{width}}  "
                    f"(first: action {g.example.action_id}{': ' + example if example else ''})"
                )
        if self.verification is not None:
            lines.append("")
            v = self.verification
            if v.error is not None:
                lines.append(f"verification: could not read the state back: {v.error}")
            elif v.ok:
                lines.append(
                    f"verification: the API's state matches the scenario ({v.users:,} users: "
                    "each one's follows and messages, and latest)"
                )
            else:
                lines.append(f"verification: {len(v.differences)} difference(s) from the scenario:")
                lines.extend(f"  - {difference}" for difference in v.differences)
        lines.append("")
        if self.ok:
            lines.append("result: OK")
        else:
            why = []
            if self.failures:
                why.append(f"{self.failures:,} unexpected outcome(s)")
            if self.verification is not None and not self.verification.ok:
                why.append("the final state is not the scenario's")
            lines.append(f"result: FAILED ({'; '.join(why)})")
        return "\n".join(lines)


class ProgressLine:
    """A one-line progress bar on a terminal (redrawn at most ten times a second).

    Silent when ``stream`` is not a terminal, so logs and pipes get only the report.
    """

    WIDTH = 24

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.done = 0
        self.unexpected = 0
        self.started = time.perf_counter()
        self.drawn = 0.0

    def __call__(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.kind is not OutcomeKind.OK:
            self.unexpected += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.drawn >= 0.1 or self.done == self.total:
            self.drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.WIDTH)
        elapsed = now - self.started
        speed = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / speed if speed > 0 else math.inf
        eta_text = f"{eta:.0f} s" if math.isfinite(eta) else "-"
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done:,}/{self.total:,} "
            f"{fraction:4.0%}  {speed:,.0f} actions/s  {self.unexpected:,} unexpected  "
            f"ETA {eta_text}  "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
