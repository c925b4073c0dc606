"""``bench.inprocess`` runs end to end on a real PostgreSQL and prints its table, and
its "off" side of the metrics comparison really has no metrics.

Its numbers are not judged here: speed is the benchmark's to report, never a
test's to assert. This keeps the command in docs/performance.md working.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("compare", ["observability", "metrics", "all", "quart", "access"])
@pytest.mark.parametrize("control", [False, True], ids=["on vs off", "control"])
def test_bench_inprocess_runs_and_reports(pg_admin_url: str, control: bool, compare: str) -> None:
    command = [sys.executable, "-m", "bench.inprocess", "--rounds", "1", "--requests", "8"]
    command += ["--compare", compare]
    result = subprocess.run(
        command + (["--control"] if control else []),
        cwd=ROOT,
        env={**os.environ, "MINITWIT_BENCH_ADMIN_URL": pg_admin_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| rounds x requests | CPU us/request on | off" in result.stdout
    assert "1 x 8 " in result.stdout
    # (Its description of the comparison, not imported: importing bench.inprocess here
    # would point this session's metrics at its directory.)
    compared = {
        "observability": "middleware",
        "metrics": "access log on in both",
        "all": "every",
        "quart": "Quart's own",
        "access": "access line written vs not",
    }
    assert "comparing: " in result.stdout
    assert compared[compare] in result.stdout
    both = {
        "metrics": "the middleware",
        "quart": "the app's classes",
        "access": "the access line",
    }.get(compare, "observability off")
    assert (f"control run: both apps have {both}" in result.stdout) is control


# Run in a process of its own: importing bench.inprocess points prometheus-client at
# a metrics directory of its own, which this test session must not inherit.
_STRIPPED_CHECK = """
from bench.inprocess import MetricsStripped  # first: it sets up the metrics as served

import dataclasses
from app.config import Settings
from app.factory import create_api_app
from app.observability import metrics
from app.services import messages

app = create_api_app(dataclasses.replace(Settings.from_env(), observability=True))
timed = messages.post

def update_everything():
    app.asgi_app.requests.add("GET", "/latest", 200, 0.01)
    metrics.count(metrics.MESSAGES_POSTED, "api")
    metrics.SIMULATOR_LATEST.set(42)
    metrics.HTTP_DURATION.labels("api", "GET", "/latest").observe(0.01)

before = metrics.exposition()[0]
with MetricsStripped(app):
    update_everything()
    assert messages.post is timed.__wrapped__
    assert metrics.exposition()[0] == before, "a metric changed while stripped"
assert messages.post is timed
update_everything()
after = metrics.exposition()[0]
for line in (
    'minitwit_messages_posted_total{source="api"} 1.0',
    "minitwit_simulator_latest_id 42.0",
    'minitwit_http_requests_total{app="api",method="GET",route="/latest",status="200"} 1.0',
):
    assert line.encode() not in before and line.encode() in after, line
"""


def _run_alone(script: str) -> None:
    """Run ``script`` in a Python process of its own (see above); it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_stripped_takes_out_every_metric_update_and_puts_it_back() -> None:
    """The "off" side of ``--compare metrics``: while inside, no metric of the app
    changes (the exposition stays as it was); on leaving, the instrumented code is back."""
    _run_alone(_STRIPPED_CHECK)


_ACCESS_LINE_CHECK = """
from bench.inprocess import AccessLineOff, call  # first: it sets up the metrics as served

import asyncio, dataclasses, io
from app.config import Settings
from app.factory import create_api_app
from app.observability import logs

async def access_lines(around):
    stream = io.StringIO()
    logs.configure(level="INFO", version="t", environment="t", stream=stream)
    app = create_api_app(dataclasses.replace(Settings.from_env(), observability=True))
    with around:
        assert await call(app, "GET", "/no-such-path") == 404
        await asyncio.sleep(0)  # the end of the turn: pending lines are written
    return [line for line in stream.getvalue().splitlines() if "minitwit.access" in line]

assert asyncio.run(access_lines(AccessLineOff())) == []
assert len(asyncio.run(access_lines(AccessLineOff(control=True)))) == 1
"""


def test_access_line_off_writes_no_access_line_and_its_control_does() -> None:
    """The "off" side of ``--compare access`` serves the request without its line."""
    _run_alone(_ACCESS_LINE_CHECK)
