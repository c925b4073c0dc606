"""``bench.inprocess`` runs end to end on a real PostgreSQL and prints its table.

Its numbers are not judged here: speed is the benchmark's to report, never a
test's to assert. This keeps the command in docs/performance.md working.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("control", [False, True], ids=["on vs off", "control"])
def test_bench_inprocess_runs_and_reports(pg_admin_url: str, control: bool) -> None:
    command = [sys.executable, "-m", "bench.inprocess", "--rounds", "1", "--requests", "8"]
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
    assert ("control run: both apps have observability off" in result.stdout) is control
