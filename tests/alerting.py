"""What the alerting tests share: the rule files, the binaries, Alertmanager's config.

PromQL is parsed with tests/promql.py (promql-parser), never with regexes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests import promql

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULES_DIR = ALERTS / "rules"
UNIT_TESTS_DIR = ALERTS / "tests"
RUNBOOKS_DIR = ALERTS / "runbooks"
ALERTMANAGER_DIR = ALERTS / "alertmanager"
ALERTMANAGER_TEMPLATE = ALERTMANAGER_DIR / "alertmanager.yml.tmpl"
ALERTMANAGER_RENDER = ALERTMANAGER_DIR / "render-config.sh"
ALERTMANAGER_ENV_EXAMPLE = ALERTMANAGER_DIR / "alertmanager.env.example"
PROMETHEUS_CONFIG = ROOT / "compose" / "prometheus" / "prometheus.yml"
DASHBOARDS_DIR = ROOT / "dashboards"

_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def _op(op: promql_parser.MatchOp) -> str:
    return next(text for known, text in _OPS if known == op)


def binary_or_skip(*names: str) -> str:
    """The first of ``names`` on PATH; skip the test (with the package to install) if none is."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        f"{' / '.join(names)} not installed: apt-get install prometheus prometheus-alertmanager "
        "(scripts/install-system-deps does it when run as root)"
    )


def rule_files() -> list[Path]:
    return promql.rule_files(RULES_DIR)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in rule_files():
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def unit_test_files() -> list[Path]:
    return sorted(UNIT_TESTS_DIR.glob("*.yml"))


def selector_text(selector: promql_parser.VectorSelector) -> str:
    """A selector as an instant query: its name and matchers, without offset or ``@``."""
    matchers = ", ".join(
        f"{m.name}{_op(m.op)}{json.dumps(m.value)}" for m in selector.matchers.matchers
    )
    return f"{selector.name or ''}{{{matchers}}}"


def alertmanager_test_env(receiver_base: str, smtp_port: int) -> dict[str, str]:
    """Values for every variable of the Alertmanager template, all pointing at loopback."""
    return {
        "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{receiver_base}/pager",
        "ALERTMANAGER_HEARTBEAT_URL": f"{receiver_base}/heartbeat",
        "ALERTMANAGER_SLACK_WEBHOOK_URL": f"{receiver_base}/slack",
        "ALERTMANAGER_SLACK_CHANNEL": "#minitwit-test",
        "ALERTMANAGER_EMAIL_TO": "oncall@example.invalid",
        "ALERTMANAGER_SMTP_SMARTHOST": f"127.0.0.1:{smtp_port}",
        "ALERTMANAGER_SMTP_FROM": "alertmanager@example.invalid",
    }


def render_alertmanager_config(
    env: dict[str, str], output: Path
) -> subprocess.CompletedProcess[str]:
    """Run the template renderer the Alertmanager container runs, with only ``env`` set."""
    return subprocess.run(
        ["sh", str(ALERTMANAGER_RENDER), str(ALERTMANAGER_TEMPLATE), str(output)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
