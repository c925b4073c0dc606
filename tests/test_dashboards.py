"""The Grafana dashboards: rendered JSON matches its sources, and every panel follows the rules."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from dashboards import render
from tests import promql

UIDS = {"minitwit-overview", "minitwit-domain", "minitwit-slo", "minitwit-runtime"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARDS = promql.rendered_dashboards()


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def run_render(*args: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-m", "dashboards.render", *args],
        cwd=promql.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_committed_json_is_a_fresh_render() -> None:
    assert render.differences() == [], "run: .venv/bin/python -m dashboards.render"


def test_check_reports_changed_missing_and_stale_files(tmp_path: Path) -> None:
    assert render.write(tmp_path)
    assert render.differences(tmp_path) == []
    assert render.write(tmp_path) == []  # nothing to rewrite the second time
    (tmp_path / "minitwit-slo.json").write_text("{}\n")
    (tmp_path / "minitwit-domain.json").unlink()
    (tmp_path / "old-dashboard.json").write_text("{}\n")

    problems = render.differences(tmp_path)

    assert problems == [
        f"{tmp_path / 'minitwit-domain.json'}: missing",
        f"{tmp_path / 'minitwit-slo.json'}: differs from a fresh render",
        f"{tmp_path / 'old-dashboard.json'}: no dashboard source renders it (stale)",
    ]
    result = run_render("--check", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "minitwit-slo.json: differs" in result.stderr


def test_render_command_is_deterministic_across_processes(tmp_path: Path) -> None:
    # Another process with another hash seed renders byte for byte what is committed.
    assert run_render("--dir", str(tmp_path), hash_seed="12345").returncode == 0
    for name, text in render.render_all().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    result = run_render("--check", hash_seed="54321")
    assert result.returncode == 0, result.stderr


def test_dashboards_have_the_stable_uids_alerts_link_to() -> None:
    assert {dashboard["uid"] for dashboard in DASHBOARDS.values()} == UIDS
    for name, dashboard in DASHBOARDS.items():
        assert name == f"{dashboard['uid']}.json"
        assert dashboard["id"] is None  # Grafana assigns ids; a fixed one clashes on import
        assert "minitwit" in dashboard["tags"]
    assert len({dashboard["title"] for dashboard in DASHBOARDS.values()}) == len(UIDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_title_description_and_unit(name: str) -> None:
    missing = []
    for panel in panels(DASHBOARDS[name]):
        title = panel.get("title") or ""
        if not title.strip():
            missing.append(f"panel {panel.get('id')}: no title")
        if panel["type"] == "row":  # a row only groups panels: a title is all it shows
            continue
        if not (panel.get("description") or "").strip():
            missing.append(f"{title}: no description")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        formats = [axis.get("format") for axis in panel.get("yaxes", [])]
        if not (unit or (formats and all(formats))):
            missing.append(f"{title}: no unit")
        if not panel.get("targets"):
            missing.append(f"{title}: no query")
    assert missing == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_reads_from_the_datasource_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    wrong = [
        f"{path}: {node['datasource']!r}"
        for path, node in promql.walk_json(dashboard)
        if "datasource" in node
        and node is not variables["datasource"]
        and node["datasource"] != DATASOURCE
    ]
    assert wrong == []
    for panel in panels(dashboard):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == DATASOURCE, panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_parses_as_promql(name: str) -> None:
    queries = promql.dashboard_queries(DASHBOARDS[name], name)
    assert queries
    failures = []
    for query in queries:
        try:
            promql.parse(query.expr)
        except ValueError as error:
            failures.append(f"{query.where}: {error}\n  {query.expr}")
    assert failures == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_use_only_defined_variables(name: str) -> None:
    dashboard = DASHBOARDS[name]
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    undefined = [
        f"{query.where}: ${variable}"
        for query in promql.dashboard_queries(dashboard, name)
        for variable in sorted(promql.variables(query.expr))
        if variable not in defined and variable not in promql.GRAFANA_BUILTINS
    ]
    assert undefined == []


def test_grafana_variables_are_substituted_before_parsing() -> None:
    expr = 'sum(rate(x{app=~"$app",instance=~"${instance}"}[$__rate_interval])) [$__range:]'
    assert promql.substitute(expr) == (
        f'sum(rate(x{{app=~"{promql.VARIABLE_VALUE}",instance=~"{promql.VARIABLE_VALUE}"}}[5m]))'
        " [1h:]"
    )
    assert promql.variables(expr) == {"app", "instance", "__rate_interval", "__range"}
    with pytest.raises(ValueError, match="built-in"):
        promql.substitute("rate(x[$__no_such_thing])")
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        promql.parse("sum(rate(x[$__rate_interval])")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_are_unique_and_panels_do_not_overlap(name: str) -> None:
    all_panels = panels(DASHBOARDS[name])
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_rendered_json_is_sorted_and_has_no_timestamps() -> None:
    for name, text in render.render_all().items():
        document = json.loads(text)
        assert text == json.dumps(document, sort_keys=True, indent=2) + "\n", name
        assert document["version"] == 0
        for _path, node in promql.walk_json(document):
            assert not {"created", "updated", "iteration"} & set(node), name


# --- Grafana provisioning: loads the datasources and these dashboards on start --------

PROVISIONING = promql.ROOT / "compose" / "grafana" / "provisioning"
# Where compose mounts dashboards/rendered in the Grafana container (see the provider file).
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
PROVISIONING_MOUNT = "/etc/grafana/provisioning"
# Datasource type -> the Compose service (host) and port it must point at.
SERVICES = {
    "prometheus": ("prometheus", 9090),
    "alertmanager": ("alertmanager", 9093),
    "elasticsearch": ("elasticsearch", 9200),
}
SECRET_KEY = re.compile(r"password|secret|token|key", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*\}|\$[A-Z][A-Z0-9_]*")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def provisioned(kind: str, key: str) -> list[dict[str, Any]]:
    files = sorted((PROVISIONING / kind).glob("*.y*ml"))
    assert files, f"no provisioning files in {PROVISIONING / kind}"
    entries = []
    for path in files:
        document = load_yaml(path)
        assert document["apiVersion"] == 1, path
        entries.extend(document[key])
    return entries


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of every Compose file in the repository (none until compose lands)."""
    services: dict[str, dict[str, Any]] = {}
    candidates = ("compose*.y*ml", "docker-compose*.y*ml", "compose/*.y*ml")
    for path in sorted({path for pattern in candidates for path in promql.ROOT.glob(pattern)}):
        document = load_yaml(path)
        if isinstance(document, dict) and isinstance(document.get("services"), dict):
            services.update(document["services"])
    return services


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """A Compose service's volumes as {container path: source}, short or long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        mounts[target] = source
    return mounts


def test_datasources_point_at_the_compose_services() -> None:
    datasources = provisioned("datasources", "datasources")
    by_type = {source["type"]: source for source in datasources}
    assert set(by_type) == set(SERVICES)
    uids = [source["uid"] for source in datasources]
    assert all(uids)
    assert len(set(uids)) == len(uids)
    services = compose_services()
    for kind, (host, port) in SERVICES.items():
        url = urlsplit(by_type[kind]["url"])
        assert (url.scheme, url.hostname, url.port) == ("http", host, port), kind
        assert by_type[kind]["access"] == "proxy"
        if services:  # once compose files exist, the hosts must be their services
            assert host in services, f"no Compose service {host!r} for the {kind} datasource"
    assert [source["name"] for source in datasources if source.get("isDefault")] == [
        by_type["prometheus"]["name"]
    ]
    assert by_type["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    assert by_type["prometheus"]["jsonData"]["alertmanagerUid"] == by_type["alertmanager"]["uid"]
    # $__rate_interval is built from the scrape interval Grafana is told.
    prometheus_config = promql.ROOT / "compose" / "prometheus" / "prometheus.yml"
    if prometheus_config.exists():
        scrape_interval = load_yaml(prometheus_config)["global"]["scrape_interval"]
        assert by_type["prometheus"]["jsonData"]["timeInterval"] == scrape_interval
    # Each dashboard's datasource variable starts on the provisioned Prometheus.
    prometheus = {by_type["prometheus"]["name"], by_type["prometheus"]["uid"]}
    for name, dashboard in DASHBOARDS.items():
        (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert variable["current"]["value"] in prometheus, name


def test_elasticsearch_datasource_reads_the_app_logs_with_credentials_from_env() -> None:
    from app.observability.logs import FIELDS

    source = next(
        s for s in provisioned("datasources", "datasources") if s["type"] == "elasticsearch"
    )
    settings = source["jsonData"]
    assert fnmatch.fnmatchcase("logs-minitwit-default", settings["index"])
    for field in ("timeField", "logMessageField", "logLevelField"):
        assert settings[field] in FIELDS, field
    assert FIELDS[settings["timeField"]] == "date"
    assert source["basicAuth"] is True
    # Credentials are Grafana env references, filled in from the container's environment.
    assert ENV_REFERENCE.fullmatch(source["basicAuthUser"])
    assert ENV_REFERENCE.fullmatch(source["secureJsonData"]["basicAuthPassword"])
    for path in (PROVISIONING / "datasources").glob("*.y*ml"):
        for _where, node in promql.walk_json(load_yaml(path)):
            for name, value in node.items():
                if isinstance(value, str) and SECRET_KEY.search(name):
                    assert ENV_REFERENCE.fullmatch(value), f"{path}: {name} is a literal secret"


def test_dashboard_provider_loads_the_rendered_json_where_compose_mounts_it() -> None:
    (provider,) = provisioned("dashboards", "providers")
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False  # the Python sources are the truth
    provider_file = next((PROVISIONING / "dashboards").glob("*.y*ml"))
    assert f"dashboards/rendered:{DASHBOARDS_MOUNT}" in provider_file.read_text()
    grafana = compose_services().get("grafana")
    if grafana is not None:  # once compose lands, it must mount what this provider reads
        mounts = bind_mounts(grafana)
        assert mounts.get(DASHBOARDS_MOUNT, "").rstrip("/").endswith("dashboards/rendered")
        assert mounts.get(PROVISIONING_MOUNT, "").rstrip("/").endswith("grafana/provisioning")


# --- The SLO panels compute what the objectives say (evaluated by promtool) ----------

SLO_DASHBOARD = "minitwit-slo.json"
STEPS = 6 * 24  # a day of samples, one every 10 minutes
WINDOWS = ("1h", "6h", "1d", "3d")


def slo_panel_exprs() -> dict[str, str]:
    """The SLO dashboard's single-value panels: title -> query, Grafana variables replaced
    ($__range is 1h)."""
    return {
        panel["title"]: promql.substitute(panel["targets"][0]["expr"])
        for panel in panels(DASHBOARDS[SLO_DASHBOARD])
        if panel["type"] == "stat"
    }


def counter(series: str, per_step: int) -> dict[str, str]:
    return {"series": series, "values": f"0+{per_step}x{STEPS}"}


def recorded(errors: float, slow: float) -> list[dict[str, str]]:
    """The alert rules' recorded bad ratios, constant over every window."""
    return [
        {"series": f'job:minitwit_slo_api_{kind}:ratio_rate{window}{{job="minitwit"}}',
         "values": f"{ratio}x{STEPS}"}
        for kind, ratio in (("errors", errors), ("slow", slow))
        for window in (*WINDOWS, "30d")
    ]  # fmt: skip


def raw_traffic(ok: int, errors: int, fast: int, slow: int) -> list[dict[str, str]]:
    """API traffic per 10 minutes, plus probe and web failures the SLOs must not count."""
    api = 'app="api",method="GET",route="/msgs/<username>"'
    health = 'app="api",method="GET",route="/health"'
    series = [
        counter(f'minitwit_http_requests_total{{{api},status="200"}}', ok),
        counter(f"minitwit_http_request_duration_seconds_count{{{api}}}", fast + slow),
        counter(f'minitwit_http_request_duration_seconds_bucket{{{api},le="0.3"}}', fast),
        counter(f'minitwit_http_requests_total{{{health},status="503"}}', 500),
        counter(f"minitwit_http_request_duration_seconds_count{{{health}}}", 500),
        counter(f'minitwit_http_request_duration_seconds_bucket{{{health},le="0.3"}}', 0),
        counter('minitwit_http_requests_total{app="web",method="GET",route="/",status="500"}', 50),
    ]
    if errors:
        series.append(counter(f'minitwit_http_requests_total{{{api},status="503"}}', errors))
    return series


def expect(objective: str, attainment: float, budget_left: float, burn: float) -> dict[str, float]:
    return {
        f"{objective}, 30 days": attainment,
        f"{objective}, selected range": attainment,
        f"{objective} error budget remaining": budget_left,
        **{f"{objective} burn rate, {window}": burn for window in WINDOWS},
    }


# Scenario -> (input series, panel title -> the value it must show).
SLO_SCENARIOS: dict[str, tuple[list[dict[str, str]], dict[str, float]]] = {
    # 1 % errors: twice the 0.5 % budget; 0.5 % slow: half the 1 % budget.
    "over budget": (
        recorded(errors=0.01, slow=0.005) + raw_traffic(ok=990, errors=10, fast=995, slow=5),
        expect("Availability", 0.99, -1, 2) | expect("Latency", 0.995, 0.5, 0.5),
    ),
    # No 5xx series at all, every request fast: nothing spent.
    "no errors": (
        recorded(errors=0, slow=0) + raw_traffic(ok=1000, errors=0, fast=1000, slow=0),
        expect("Availability", 1, 1, 0) | expect("Latency", 1, 1, 0),
    ),
    # Counters exist but nothing happens: no traffic spends nothing in the range (no NaN).
    "no traffic": (
        raw_traffic(ok=0, errors=0, fast=0, slow=0),
        {"Availability, selected range": 1, "Latency, selected range": 1},
    ),
}


@pytest.mark.parametrize("scenario", sorted(SLO_SCENARIOS))
def test_slo_panels_compute_attainment_budget_and_burn_rate(scenario: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    series, expected = SLO_SCENARIOS[scenario]
    exprs = slo_panel_exprs()
    checks = [
        {"expr": exprs[title], "eval_time": "1d", "exp_samples": [{"labels": "{}", "value": value}]}
        for title, value in expected.items()
    ]
    test_file = tmp_path / "slo_test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "evaluation_interval": "1m",
                "tests": [{"interval": "10m", "input_series": series, "promql_expr_test": checks}],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_burn_rate_panel_reads_its_own_window() -> None:
    exprs = slo_panel_exprs()
    for objective, kind in (("Availability", "errors"), ("Latency", "slow")):
        for window in WINDOWS:
            names = promql.metric_names(exprs[f"{objective} burn rate, {window}"])
            assert names == {f"job:minitwit_slo_api_{kind}:ratio_rate{window}"}
        for title in (f"{objective}, 30 days", f"{objective} error budget remaining"):
            assert promql.metric_names(exprs[title]) == {
                f"job:minitwit_slo_api_{kind}:ratio_rate30d"
            }


def test_alert_dashboard_links_name_rendered_dashboards() -> None:
    """Alerts link to dashboards by uid (/d/<uid>): each must be one rendered here."""
    links = []
    for path in promql.rule_files():
        for group in load_yaml(path)["groups"]:
            for rule in group.get("rules") or []:
                for value in (rule.get("annotations") or {}).values():
                    if "/d/" in value:
                        links.append((rule["alert"], urlsplit(value).path))
    rendered = {document["uid"] for document in DASHBOARDS.values()}
    for alert, path in links:
        uid = path.split("/d/", 1)[1].split("/")[0]
        assert uid in rendered, f"alert {alert} links to unknown dashboard {uid!r}"
