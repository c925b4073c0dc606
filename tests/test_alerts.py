"""The alerting bundle, checked with the real tools: promtool, amtool, the renderer.

- The rule files are what ``alerts/generate.py`` builds, pass ``promtool check
  rules``, and their unit tests (``alerts/tests/*.yml``) pass ``promtool test
  rules``; every alert has a case where it fires and one where it must not.
- Every alert carries a severity, a summary, a description with its value, a
  runbook that exists (with its sections) and a link to a dashboard.
- Alertmanager's template renders from the environment (and refuses to
  render without it), passes ``amtool check-config``, routes by severity, and
  commits no secret.
- The Compose Prometheus configuration passes ``promtool check config`` with
  the rules it loads.

Which metric names the rules may use is checked by the names contract
(tests/test_metric_names.py).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import defaultdict
from fnmatch import fnmatch
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from app.observability.logs import FIELDS
from tests.alerting import (
    ALERTMANAGER_ENV_EXAMPLE,
    ALERTMANAGER_TEMPLATE,
    ALERTS,
    PROMETHEUS_CONFIG,
    RULES_DIR,
    RUNBOOKS_DIR,
    alert_rules,
    alertmanager_test_env,
    binary_or_skip,
    render_alertmanager_config,
    rule_files,
    unit_test_files,
)

DASHBOARD_UIDS = {"minitwit-overview", "minitwit-domain", "minitwit-slo", "minitwit-runtime"}
SEVERITIES = {"critical", "warning", "none"}
RUNBOOK_SECTIONS = ("## Meaning", "## Confirm", "### Dashboards", "### Kibana", "## Mitigate")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::-[^}]*)?\}")


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alerts_generate", ALERTS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ALERTS_BY_NAME = {rule["alert"]: rule for rule in alert_rules()}


# --- The rules ------------------------------------------------------------------


def test_rule_files_are_what_the_generator_builds() -> None:
    generator = load_generator()
    outputs: dict[Path, str] = generator.outputs()
    assert set(outputs) == set(rule_files())
    for path, text in outputs.items():
        assert path.read_text() == text, (
            f"{path.relative_to(ALERTS.parent)} differs from alerts/generate.py: "
            "run .venv/bin/python alerts/generate.py"
        )


def test_promtool_check_rules() -> None:
    promtool = binary_or_skip("promtool")
    result = run(promtool, "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_files())


def test_promtool_unit_tests_pass() -> None:
    promtool = binary_or_skip("promtool")
    result = run(promtool, "test", "rules", *map(str, unit_test_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(unit_test_files())


def test_the_required_alerts_exist() -> None:
    """The issue's list, one alert (at least) for each item."""
    required = {
        "MiniTwitDown",  # the app down
        "MiniTwitReplicaDown",  # a replica down
        "MiniTwitNoScrapeData",
        "MiniTwitHighErrorRatio",
        "MiniTwitHighLatency",  # p99 above the simulator's 0.3 s timeout
        "MiniTwitAvailabilityBudgetBurnFast",
        "MiniTwitAvailabilityBudgetBurnSlow",
        "MiniTwitLatencyBudgetBurnFast",
        "MiniTwitLatencyBudgetBurnSlow",
        "MiniTwitSimulatorSilent",  # no requests
        "MiniTwitSimulatorStalled",  # no `latest` progress
        "MiniTwitUsersNotFoundSpike",
        "MiniTwitNoMessagesPosted",
        "MiniTwitDatabaseErrors",
    }
    assert required <= set(ALERTS_BY_NAME)


def test_alert_names_are_unique() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))


def test_the_down_alert_pages_within_a_minute() -> None:
    """The lesson of the system we rebuild: an outage must page, and quickly."""
    down = ALERTS_BY_NAME["MiniTwitDown"]
    assert down["labels"]["severity"] == "critical"
    assert down["for"] == "1m"


@pytest.mark.parametrize("name", sorted(ALERTS_BY_NAME))
def test_alert_has_severity_summary_description_and_links(name: str) -> None:
    rule = ALERTS_BY_NAME[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert "$value" in annotations["description"], "the description must show the value"
    runbook = annotations["runbook_url"]
    assert runbook.endswith(f"/alerts/runbooks/{name}.md")
    assert (RUNBOOKS_DIR / f"{name}.md").is_file()
    dashboard = re.fullmatch(r"https?://[^/]+/d/([a-z0-9-]+)", annotations["dashboard_url"])
    assert dashboard, annotations["dashboard_url"]
    assert dashboard[1] in DASHBOARD_UIDS


def kql_fields(query: str) -> set[str]:
    """The field names of a KQL query: what stands before ``:`` or a comparison."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*(?::|<=|>=|<|>)", without_strings))


def test_kql_fields_are_read_from_the_query() -> None:
    assert kql_fields('event.action: "a:b" and http.response.status_code >= 500') == {
        "event.action",
        "http.response.status_code",
    }


@pytest.mark.parametrize("name", sorted(ALERTS_BY_NAME))
def test_runbook_explains_confirms_and_mitigates(name: str) -> None:
    text = (RUNBOOKS_DIR / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    positions = [text.find(f"\n{section}\n") for section in RUNBOOK_SECTIONS]
    assert all(p >= 0 for p in positions), f"sections needed: {RUNBOOK_SECTIONS}"
    assert positions == sorted(positions), f"sections in this order: {RUNBOOK_SECTIONS}"
    # It links to the dashboard the alert links to.
    assert ALERTS_BY_NAME[name]["annotations"]["dashboard_url"] in text
    # Its Kibana searches use fields the app's logs carry (app/observability/logs.py).
    kibana = text.split("\n### Kibana\n", 1)[1].split("\n## Mitigate\n", 1)[0]
    queries = re.findall(r"```kql\n(.*?)```", kibana, re.DOTALL)
    assert queries, "the Kibana section needs at least one ```kql search"
    for query in queries:
        unknown = kql_fields(query) - set(FIELDS)
        assert not unknown, f"fields the logs do not carry: {sorted(unknown)}"


def route_templates() -> set[str]:
    """The ``route`` label values the middleware can record: each app's URL rules."""
    from app.config import Settings
    from app.factory import create_api_app, create_web_app
    from app.observability.middleware import UNMATCHED_ROUTE

    settings = Settings(environment="test", database_url="sqlite://:memory:")
    apps = (create_web_app(settings), create_api_app(settings))
    return {rule.rule for app in apps for rule in app.url_map.iter_rules()} | {UNMATCHED_ROUTE}


def test_routes_named_by_runbooks_and_rule_tests_are_routes_the_apps_record() -> None:
    """A renamed route template (a new converter name, say) renames the metrics' and
    logs' route label: searches and legends naming the old one would find nothing."""
    named: dict[str, set[str]] = defaultdict(set)
    for path in [*RUNBOOKS_DIR.glob("*.md"), *unit_test_files()]:
        text = path.read_text()
        for route in re.findall(r'route="([^"]*)"', text):
            named[route].add(path.name)
        for query in re.findall(r"http\.route: *(\([^)]*\)|\"[^\"]*\")", text):
            for route in re.findall(r'"([^"]*)"', query):
                named[route].add(path.name)
    assert "/msgs/<path:username>" in named  # the search found what it looks for
    unknown = {route: sorted(files) for route, files in named.items()}
    for route in route_templates():
        unknown.pop(route, None)
    assert not unknown, f"route labels no app records: {unknown}"


def test_every_runbook_belongs_to_an_alert() -> None:
    assert {path.stem for path in RUNBOOKS_DIR.glob("*.md")} == set(ALERTS_BY_NAME)


def unit_test_outcomes() -> dict[str, dict[bool, list[str]]]:
    """For each alert name: the promtool cases that expect it to fire / not to fire."""
    outcomes: dict[str, dict[bool, list[str]]] = defaultdict(lambda: {True: [], False: []})
    for path in unit_test_files():
        document = yaml.safe_load(path.read_text())
        for case in document.get("tests", []):
            for check in case.get("alert_rule_test") or []:
                fires = bool(check.get("exp_alerts"))
                where = f"{path.name}: {case['name']} @ {check['eval_time']}"
                outcomes[check["alertname"]][fires].append(where)
    return outcomes


def test_every_alert_has_a_firing_and_a_not_firing_unit_test() -> None:
    outcomes = unit_test_outcomes()
    missing = [
        f"{name}: no case where it {'fires' if fires else 'must not fire'}"
        for name in sorted(ALERTS_BY_NAME)
        for fires in (True, False)
        if not outcomes[name][fires]
    ]
    assert not missing, "\n".join(missing)
    assert set(outcomes) <= set(ALERTS_BY_NAME), "unit tests name alerts that do not exist"


def test_unit_tests_load_the_real_rule_files() -> None:
    for path in unit_test_files():
        document = yaml.safe_load(path.read_text())
        loaded = {(path.parent / name).resolve() for name in document["rule_files"]}
        assert loaded <= {p.resolve() for p in rule_files()}, path.name
        assert (RULES_DIR / "minitwit-recording.yml").resolve() in loaded, path.name


# --- Alertmanager -----------------------------------------------------------------


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = alertmanager_test_env("http://127.0.0.1:9", smtp_port=25)
    output = tmp_path / "alertmanager.yml"
    result = render_alertmanager_config(env, output)
    assert result.returncode == 0, result.stderr
    return output, env


def test_alertmanager_config_renders_and_passes_amtool(
    rendered: tuple[Path, dict[str, str]],
) -> None:
    amtool = binary_or_skip("amtool")
    output, env = rendered
    text = output.read_text()
    assert "${" not in without_comments(text)
    for value in env.values():
        assert value in text
    result = run(amtool, "check-config", str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # critical pages and is posted to chat as well
        (["severity=critical", "alertname=MiniTwitDown", "service=minitwit"], "pager,chat"),
        (["severity=warning", "alertname=MiniTwitReplicaDown", "service=minitwit"], "chat"),
        (["severity=none", "alertname=Watchdog", "service=minitwit"], "heartbeat"),
    ],
)
def test_alertmanager_routes_by_severity(
    rendered: tuple[Path, dict[str, str]], labels: list[str], receivers: str
) -> None:
    amtool = binary_or_skip("amtool")
    output, _ = rendered
    result = run(amtool, "config", "routes", "test", f"--config.file={output}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_alertmanager_inhibits_warnings_while_critical_fires(
    rendered: tuple[Path, dict[str, str]],
) -> None:
    config = yaml.safe_load(rendered[0].read_text())
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["service"],
    } in config["inhibit_rules"]
    # every alert carries the label the inhibition compares
    assert all(rule["labels"].get("service") == "minitwit" for rule in alert_rules())


def test_render_refuses_to_run_without_its_variables(tmp_path: Path) -> None:
    env = alertmanager_test_env("http://127.0.0.1:9", smtp_port=25)
    del env["ALERTMANAGER_SLACK_WEBHOOK_URL"]
    env["ALERTMANAGER_PAGER_WEBHOOK_URL"] = ""  # empty counts as missing
    output = tmp_path / "alertmanager.yml"
    result = render_alertmanager_config(env, output)
    assert result.returncode != 0
    assert "ALERTMANAGER_SLACK_WEBHOOK_URL" in result.stderr
    assert "ALERTMANAGER_PAGER_WEBHOOK_URL" in result.stderr
    assert not output.exists()
    assert not list(tmp_path.iterdir())


def test_render_escapes_values_so_they_cannot_change_the_config(tmp_path: Path) -> None:
    amtool = binary_or_skip("amtool")
    password = 'p"w\\d: #{x}\n  smtp_require_tls: false'
    env = {
        **alertmanager_test_env("http://127.0.0.1:9", smtp_port=25),
        "ALERTMANAGER_SMTP_PASSWORD": password,
    }
    output = tmp_path / "alertmanager.yml"
    assert render_alertmanager_config(env, output).returncode == 0
    config = yaml.safe_load(output.read_text())
    assert config["global"]["smtp_auth_password"] == password
    assert config["global"]["smtp_require_tls"] is True
    assert run(amtool, "check-config", str(output)).returncode == 0
    assert output.stat().st_mode & 0o077 == 0, "the rendered file holds secrets: owner only"


def test_alertmanager_template_commits_no_secret() -> None:
    """Every URL and password in the template is a placeholder, documented in the example."""
    template = yaml.safe_load(ALERTMANAGER_TEMPLATE.read_text())
    secret_keys = {"url", "api_url", "smtp_auth_password", "auth_password", "to", "smtp_smarthost"}
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in secret_keys:
                    found.append((key, value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template)
    assert {key for key, _ in found} >= {"url", "api_url", "smtp_auth_password", "to"}
    for key, value in found:
        assert PLACEHOLDER.fullmatch(value), f"{key}: {value!r} must come from the environment"
    example = ALERTMANAGER_ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    used = set(PLACEHOLDER.findall(without_comments(ALERTMANAGER_TEMPLATE.read_text())))
    assert used == documented
    assert "REPLACE_ME" in example


# --- Prometheus -----------------------------------------------------------------------


def test_compose_prometheus_config_loads_the_rules(tmp_path: Path) -> None:
    promtool = binary_or_skip("promtool")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    # The rule files, as mounted at /etc/prometheus/rules/, all match the glob.
    (pattern,) = config["rule_files"]
    assert all(fnmatch(f"/etc/prometheus/rules/{p.name}", pattern) for p in rule_files())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"minitwit", "prometheus"} <= set(jobs)  # the rules' job="..." selectors
    assert jobs["minitwit"]["dns_sd_configs"][0]["names"] == ["app"]

    # promtool checks the configuration, and the rules through it (paths as on the host).
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_files())} rule files found" in result.stdout
    for path in rule_files():
        assert f"Checking {path}\n  SUCCESS" in result.stdout
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
