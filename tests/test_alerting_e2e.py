"""Alerting end to end: MiniTwit, a real Prometheus with the project's rules, a
real Alertmanager with the project's configuration, and a webhook receiver
this test runs in place of the pager, the chat and the heartbeat service.

Real: two ``minitwit serve`` replicas on one PostgreSQL database, the Prometheus
and Alertmanager binaries, the rule files in alerts/rules/, Alertmanager's
configuration rendered from its template by its own script, and the Prometheus
configuration of compose/. The test changes copies of them, and only in this:

- Prometheus: scrape and evaluation every second, and its targets on loopback,
  listed in a file that plays the part of Compose's DNS (running replicas
  only: a killed replica leaves it, as a stopped container leaves DNS).
- The rules: ``for`` is 5 s on every alert except MiniTwitDown, which keeps
  its real minute, so that the measured time from kill to page is the one
  production has (but for Alertmanager's group_wait, below). Waiting out the
  other ``for`` durations (5 to 15 minutes) would take the test half an hour;
  the promtool unit tests check them. Expressions, windows, thresholds,
  labels and annotations are unchanged: the copy is compared with the
  original.
- Alertmanager: every receiver URL points at this test's webhook, and
  ``group_wait``/``group_interval`` are 1 s/2 s instead of 0 s to 5 min, so a
  notification follows its alert at once. Routes, grouping, inhibition and
  receivers are those of the real configuration.

The test then drives traffic and asserts, in order: the Watchdog heartbeat
arrives; a replica killed (and gone from discovery) brings MiniTwitReplicaDown
to chat, not to the pager; the last replica killed pages MiniTwitDown with its
labels and runbook; restarting resolves it; injected 500s fire the error-ratio
and fast availability burn alerts (the burn pages, the warning is held back by
inhibition); injected latency fires the latency alert; locked tables fire the
database-errors alert; and finally that every
series selector of every rule, every recorded series and every dashboard
panel query returns data from this Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import promql_parser
import pytest
import yaml

from app.db import migrate
from tests import postgres, promql
from tests.alerting import (
    DASHBOARDS_DIR,
    PROMETHEUS_CONFIG,
    RUNBOOKS_DIR,
    alert_rules,
    alertmanager_test_env,
    binary_or_skip,
    recording_rules,
    render_alertmanager_config,
    rule_files,
    selector_text,
)
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings, start_server
from tests.processes import wait_until

pytestmark = pytest.mark.slow

SHORT_FOR = "5s"
REAL_FOR = frozenset({"MiniTwitDown"})
INTERVAL = "1s"
# Hang guards, generous for a loaded 2-core CI machine; nothing asserts a speed.
STARTUP_GUARD = 60.0
ALERT_GUARD = 180.0
HEARTBEAT_EVERY = 60.0  # seconds: the heartbeat route of alerts/alertmanager
TRAFFIC_GUARD = 900.0  # background traffic stops by itself after this, whatever happens


def timestamp(rfc3339: str) -> float:
    """Seconds since the epoch of a Prometheus or Alertmanager time (nanoseconds dropped)."""
    return datetime.fromisoformat(rfc3339).timestamp()


def seconds(duration: str) -> float:
    return float(promql_parser.parse_duration(duration).total_seconds())


# --- The webhook receiver ---------------------------------------------------------


@dataclass
class Delivery:
    path: str
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival


class Receiver:
    """Takes Alertmanager's notifications (webhook and Slack JSON) and keeps them."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, json.loads(body or b"{}"), time.monotonic())
                    )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def webhook_alerts(
        self, path: str, alertname: str, status: str
    ) -> list[tuple[Delivery, dict[str, Any]]]:
        """Alerts named ``alertname`` in ``status`` delivered to the webhook at ``path``."""
        return [
            (delivery, alert)
            for delivery in self.at(path)
            for alert in delivery.body.get("alerts", [])
            if alert["labels"].get("alertname") == alertname and alert["status"] == status
        ]

    def slack_messages(self, alertname: str, status: str) -> list[dict[str, Any]]:
        return [
            attachment
            for delivery in self.at("/slack")
            for attachment in delivery.body.get("attachments", [])
            if f"[{status.upper()}" in attachment.get("title", "")
            and f"] {alertname} (" in attachment.get("title", "")
        ]


# --- Prometheus and Alertmanager ---------------------------------------------------


class Daemon:
    """A server binary on a loopback port, stopped (killed if need be) at the end."""

    def __init__(self, command: list[str], log_path: Path, url: str) -> None:
        self.url = url
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.url} exited with {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()


class Prometheus(Daemon):
    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def try_query(self, expr: str) -> tuple[list[dict[str, Any]], str | None]:
        """The result, or the error Prometheus gave for the expression."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            return [], f"{body.get('errorType')}: {body.get('error')}"
        return list(body["data"]["result"]), None

    def firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        return [
            alert
            for alert in self.get("/api/v1/alerts")["data"]["alerts"]
            if alert["labels"]["alertname"] == alertname
            and alert["state"] == "firing"
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


class Alertmanager(Daemon):
    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds, suppressed ones included."""
        return [
            alert
            for alert in self.get("/api/v2/alerts", inhibited="true", silenced="true")
            if alert["labels"]["alertname"] == alertname
        ]


def rules_with_short_for(target_dir: Path) -> list[Path]:
    """Copies of the rule files with ``for`` shortened; nothing else differs (checked)."""
    target_dir.mkdir()
    written = []
    for path in rule_files():
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule and rule["alert"] not in REAL_FOR:
                    assert seconds(rule["for"]) >= seconds(SHORT_FOR)
                    rule["for"] = SHORT_FOR
        copy = target_dir / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        # The only difference: the ``for`` fields.
        original = yaml.safe_load(path.read_text())
        for group in (*original["groups"], *document["groups"]):
            for rule in group["rules"]:
                rule.pop("for", None)
        assert original == document
        written.append(copy)
    return written


def prometheus_test_config(
    rules_dir: Path, targets_file: Path, prometheus_port: int, alertmanager_port: int
) -> dict[str, Any]:
    """compose/prometheus/prometheus.yml with short intervals and loopback targets."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(
        scrape_interval=INTERVAL, evaluation_interval=INTERVAL, scrape_timeout=INTERVAL
    )
    config["rule_files"] = [str(rules_dir / "*.yml")]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    alertmanagers["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "minitwit", "alertmanager"}, "a new job: loopback it here"
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
    jobs["alertmanager"]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    del jobs["minitwit"]["dns_sd_configs"]
    jobs["minitwit"]["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return config


def alertmanager_test_config(rendered: Path) -> None:
    """Alertmanager's rendered configuration with its waits cut to seconds, in place."""
    config = yaml.safe_load(rendered.read_text())

    def shorten(route: dict[str, Any]) -> None:
        if "group_wait" in route:
            route["group_wait"] = "1s"
        if "group_interval" in route:
            route["group_interval"] = "2s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    rendered.write_text(yaml.safe_dump(config, sort_keys=False))


# --- MiniTwit and its traffic ----------------------------------------------------


@dataclass
class Replicas:
    """``minitwit serve`` processes, and the discovery file that lists the running ones."""

    database_url: str
    log_dir: Path
    targets_file: Path
    running: list[LiveServer] = field(default_factory=list)
    started: list[LiveServer] = field(default_factory=list)
    _count: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> LiveServer:
        metrics_dir = self.log_dir / f"metrics-{next(self._count)}"
        server = start_server(
            self.database_url,
            self.log_dir,
            env={"MINITWIT_FAULT_INJECTION": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        )
        self.started.append(server)
        self.running.append(server)
        self.publish()
        return server

    def kill(self, server: LiveServer) -> None:
        """SIGKILL, as a crash or an OOM kill; the replica leaves discovery."""
        server.process.kill()
        server.process.wait()
        self.running.remove(server)
        self.publish()

    def publish(self) -> None:
        targets = [{"targets": [instance(s)], "labels": {}} for s in self.running]
        staging = self.targets_file.with_suffix(".tmp")
        staging.write_text(json.dumps(targets))
        staging.replace(self.targets_file)

    def api_urls(self) -> list[str]:
        return [s.api_url for s in list(self.running)]

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


def instance(server: LiveServer) -> str:
    return server.web_url.removeprefix("http://")


def set_faults(servers: list[LiveServer], error_ratio: float = 0.0, delay: float = 0.0) -> None:
    for server in servers:
        response = httpx.put(
            f"{server.web_url}/_faults",
            json={"error_ratio": error_ratio, "delay_seconds": delay},
            timeout=10,
        )
        assert response.status_code == 200, response.text


class Traffic:
    """Simulator-like actions on the running replicas from a few threads, until stopped."""

    def __init__(self, targets: Callable[[], list[str]], threads: int = 3) -> None:
        self.targets = targets
        self.latest = itertools.count(1)
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, worker: int) -> None:
        me, friend = f"load-{worker}", f"load-{worker}-friend"
        deadline = time.monotonic() + TRAFFIC_GUARD
        registered: set[str] = set()
        with httpx.Client(headers=SIMULATOR_AUTH, timeout=15) as client:
            for step in itertools.count():
                if self.stopping.is_set() or time.monotonic() > deadline:
                    return
                targets = self.targets()
                if targets:
                    base = targets[step % len(targets)]
                    # A replica being killed, or the database locked on purpose.
                    with contextlib.suppress(httpx.HTTPError):
                        self._act(client, base, step, me, friend, registered)
                self.stopping.wait(0.1)

    def _act(
        self, client: httpx.Client, base: str, step: int, me: str, friend: str, registered: set[str]
    ) -> None:
        latest = {"latest": next(self.latest)}
        for user in (me, friend):
            if user not in registered:
                response = client.post(
                    f"{base}/register",
                    params=latest,
                    json={"username": user, "email": f"{user}@example.com", "pwd": "pw"},
                )
                if response.status_code in (204, 400):  # 400: taken, by an earlier try
                    registered.add(user)
                return
        if step % 40 == 0:
            client.get(f"{base}/msgs/nobody-{step}", params=latest)  # a user not found
            return
        match step % 6:
            case 0:
                client.post(f"{base}/msgs/{me}", params=latest, json={"content": f"tick {step}"})
            case 1:
                client.get(f"{base}/msgs", params={**latest, "no": 20})
            case 2:
                client.post(f"{base}/fllws/{me}", params=latest, json={"follow": friend})
            case 3:
                client.get(f"{base}/msgs/{me}", params=latest)
            case 4:
                client.post(f"{base}/fllws/{me}", params=latest, json={"unfollow": friend})
            case _:
                client.get(f"{base}/latest")


def exercise_every_metric(server: LiveServer, tag: str) -> None:
    """One of each thing the metrics count, on both surfaces, with the expected answers."""
    with httpx.Client(base_url=server.api_url, headers=SIMULATOR_AUTH, timeout=15) as api:
        a, b = f"ex-{tag}-a", f"ex-{tag}-b"
        for user in (a, b):
            body = {"username": user, "email": f"{user}@example.com", "pwd": "pw"}
            assert api.post("/register", json=body).status_code == 204
        assert api.post(f"/msgs/{a}", json={"content": "hello"}).status_code == 204
        assert api.post(f"/fllws/{a}", json={"follow": b}).status_code == 204
        assert api.post(f"/fllws/{a}", json={"unfollow": b}).status_code == 204
        assert api.get(f"/msgs/ex-{tag}-nobody").status_code == 404
    with httpx.Client(base_url=server.web_url, timeout=15) as web:
        c = f"ex-{tag}-c"
        form = {"username": c, "email": f"{c}@example.com", "password": "pw", "password2": "pw"}
        assert web.post("/register", data=form).status_code == 302
        assert web.post("/login", data={"username": c, "password": "nope"}).status_code == 200
        assert web.post("/login", data={"username": c, "password": "pw"}).status_code == 302
        assert web.post("/add_message", data={"text": "from the web"}).status_code == 302
        assert web.get(f"/{a}/follow").status_code == 302
        assert web.get(f"/{a}/unfollow").status_code == 302
        assert web.get("/").status_code == 200
        assert web.get(f"/ex-{tag}-nobody").status_code == 404


TABLES = ('"user"', "follower", "message", "latest")


@contextmanager
def tables_locked(database_url: str) -> Iterator[None]:
    """Hold an exclusive lock on MiniTwit's tables, from another connection.

    Every statement of the app then waits, and fails after MINITWIT_DB_TIMEOUT
    (2 s in the tests) as a database outage: a 503 and
    ``minitwit_errors_total{kind="database_unavailable"}``.
    """
    locked, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait, ALERT_GUARD)
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            failure.append(exc)
            locked.set()

    holder = threading.Thread(target=run, daemon=True)
    holder.start()
    locked.wait(STARTUP_GUARD)
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        release.set()
        holder.join(STARTUP_GUARD)


# --- Dashboards ----------------------------------------------------------------------


def panel_targets(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' panels included."""
    for panel in panels:
        for target in panel.get("targets") or []:
            if isinstance(target.get("expr"), str) and target["expr"].strip():
                yield panel.get("title", "?"), target["expr"]
        yield from panel_targets(panel.get("panels") or [])


def with_dashboard_variables(expr: str, dashboard: dict[str, Any]) -> str:
    """The query Grafana would send: built-ins, and each variable's current value."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = (variable.get("current") or {}).get("value")
        chosen = current if isinstance(current, list) else [current]
        if "$__all" in chosen or not any(chosen):
            values[variable["name"]] = variable.get("allValue") or ".*"
        else:
            values[variable["name"]] = "|".join(str(v) for v in chosen)

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in promql.GRAFANA_BUILTINS:
            return promql.GRAFANA_BUILTINS[name]
        return values[name]

    return promql._VARIABLE.sub(value, expr)


# --- The test ------------------------------------------------------------------------


class Report:
    """Timings, written to the terminal as they happen (past output capture, even with -q)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.config = request.config
        self.lines: list[str] = []

    def __call__(self, what: str, since: float, until: float | None = None) -> float:
        """Report the seconds from ``since`` to ``until`` (now by default); return them."""
        elapsed = (time.monotonic() if until is None else until) - since
        self.write(f"{what} after {elapsed:.1f} s")
        return elapsed

    def write(self, line: str) -> None:
        self.lines.append(line)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[alerting e2e] {line}")


def first(found: list[Any]) -> Any:
    return found[0] if found else None


@pytest.fixture
def binaries() -> tuple[str, str]:
    return (
        binary_or_skip("prometheus"),
        binary_or_skip("prometheus-alertmanager", "alertmanager"),
    )


@pytest.fixture
def postgres_url(binaries: tuple[str, str], pg_admin_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (production's backend), dropped afterwards."""
    url = asyncio.run(postgres.create_database(pg_admin_url))
    try:
        asyncio.run(migrate(make_settings(url), progress=lambda _: None))
        yield url
    finally:
        asyncio.run(postgres.drop_database(pg_admin_url, url))


def test_alerts_reach_the_receivers_end_to_end(
    binaries: tuple[str, str], postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prometheus_bin, alertmanager_bin = binaries
    report = Report(request)

    with ExitStack() as cleanup:
        # The receiver, two replicas.
        receiver = Receiver()
        receiver.thread.start()
        cleanup.callback(receiver.server.shutdown)

        replicas = Replicas(postgres_url, tmp_path, tmp_path / "targets.json")
        cleanup.callback(replicas.stop_all)
        replica_a, replica_b = replicas.start(), replicas.start()

        # Alertmanager, with the project's configuration.
        alertmanager_port, prometheus_port = postgres.free_port(), postgres.free_port()
        rendered = tmp_path / "alertmanager.yml"
        env = alertmanager_test_env(receiver.base_url, smtp_port=postgres.free_port())
        result = render_alertmanager_config(env, rendered)
        assert result.returncode == 0, result.stderr
        alertmanager_test_config(rendered)
        alertmanager = Alertmanager(
            [
                alertmanager_bin,
                f"--config.file={rendered}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",  # no gossip: one instance, no network
            ],
            tmp_path / "alertmanager.log",
            f"http://127.0.0.1:{alertmanager_port}",
        )
        cleanup.callback(alertmanager.stop)

        # Prometheus, with the project's rules.
        rules_dir = tmp_path / "rules"
        rules_with_short_for(rules_dir)
        config_path = tmp_path / "prometheus.yml"
        config = prometheus_test_config(
            rules_dir, replicas.targets_file, prometheus_port, alertmanager_port
        )
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        prometheus = Prometheus(
            [
                prometheus_bin,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            tmp_path / "prometheus.log",
            f"http://127.0.0.1:{prometheus_port}",
        )
        cleanup.callback(prometheus.stop)
        wait_until(alertmanager.ready, STARTUP_GUARD, "Alertmanager to be ready")
        wait_until(prometheus.ready, STARTUP_GUARD, "Prometheus to be ready")

        traffic = Traffic(replicas.api_urls)
        traffic.start()
        cleanup.callback(traffic.stop)

        # -- 0. Everything is scraped, every rule loaded, and the heartbeat flows.
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        assert {g["name"] for g in groups} == {
            g["name"] for path in rule_files() for g in yaml.safe_load(path.read_text())["groups"]
        }
        wait_until(
            lambda: len(prometheus.query('up{job="minitwit"} == 1')) == 2,
            STARTUP_GUARD,
            "both replicas to be scraped",
        )
        heartbeat = wait_until(
            lambda: receiver.webhook_alerts("/heartbeat", "Watchdog", "firing"),
            ALERT_GUARD,
            "the Watchdog heartbeat at the heartbeat receiver",
        )
        assert heartbeat[0][1]["labels"]["severity"] == "none"
        for server in replicas.running:
            exercise_every_metric(server, tag=instance(server).replace(":", "-"))

        # -- 1. One replica dies: a warning in chat, no page.
        killed_at = time.monotonic()
        replicas.kill(replica_a)
        chat = wait_until(
            lambda: receiver.slack_messages("MiniTwitReplicaDown", "firing"),
            ALERT_GUARD,
            "MiniTwitReplicaDown in the chat channel",
        )
        report("one replica killed -> MiniTwitReplicaDown in chat", killed_at)
        assert "/alerts/runbooks/MiniTwitReplicaDown.md" in chat[0]["text"]
        assert "/d/minitwit-overview" in chat[0]["text"]
        assert not receiver.webhook_alerts("/pager", "MiniTwitReplicaDown", "firing")
        assert not receiver.webhook_alerts("/pager", "MiniTwitDown", "firing")

        # -- 2. The last replica dies: MiniTwitDown pages, with labels and runbook.
        killed_at = time.monotonic()
        replicas.kill(replica_b)
        delivery, alert = wait_until(
            lambda: first(receiver.webhook_alerts("/pager", "MiniTwitDown", "firing")),
            ALERT_GUARD,
            "MiniTwitDown at the pager webhook",
        )
        to_page = report(
            "all replicas killed -> MiniTwitDown paged (for: 1m)", killed_at, delivery.at
        )
        assert alert["labels"] == {
            "alertname": "MiniTwitDown",
            "severity": "critical",
            "service": "minitwit",
        }
        runbook = alert["annotations"]["runbook_url"]
        assert runbook.endswith("/alerts/runbooks/MiniTwitDown.md")
        assert (RUNBOOKS_DIR / "MiniTwitDown.md").is_file()
        assert alert["annotations"]["dashboard_url"].endswith("/d/minitwit-overview")
        assert alert["annotations"]["description"].startswith("0 MiniTwit replicas")
        # The `for` is real: firing began a minute after Prometheus first saw the condition.
        # (Counted from the kill it can look shorter: a scrape of the last replica that
        # timed out on a loaded machine just before the kill starts the minute early.)
        pending = [
            seen
            for seen in prometheus.get("/api/v1/alerts")["data"]["alerts"]
            if seen["labels"]["alertname"] == "MiniTwitDown" and seen["state"] == "firing"
        ]
        assert len(pending) == 1, pending
        held = timestamp(alert["startsAt"]) - timestamp(pending[0]["activeAt"])
        # (Both are evaluation times, written with different precision: within a millisecond.)
        assert held >= seconds("1m") - 0.001, f"fired {held} s after pending: `for` is not real"
        assert to_page >= seconds("1m") - 10, "paged well before a minute after the kill"

        # -- 3. Restarted: the page resolves.
        restarted_at = time.monotonic()
        replicas.start()
        replicas.start()
        answered = time.monotonic()
        delivery, _ = wait_until(
            lambda: first(receiver.webhook_alerts("/pager", "MiniTwitDown", "resolved")),
            ALERT_GUARD,
            "MiniTwitDown resolved at the pager webhook",
        )
        report("restarted -> MiniTwitDown resolved", restarted_at, delivery.at)
        report("  (counted from both replicas answering /health)", answered, delivery.at)
        for server in replicas.running:
            exercise_every_metric(server, tag=instance(server).replace(":", "-"))

        # -- 4. Injected 500s: the error ratio fires, the fast burn pages and
        #       inhibits the warning.
        set_faults(replicas.running, error_ratio=1.0)
        started = time.monotonic()
        wait_until(
            lambda: prometheus.firing("MiniTwitHighErrorRatio", app="api"),
            ALERT_GUARD,
            "MiniTwitHighErrorRatio firing in Prometheus",
        )
        report("500s injected -> MiniTwitHighErrorRatio firing in Prometheus", started)
        delivery, burn = wait_until(
            lambda: first(
                receiver.webhook_alerts("/pager", "MiniTwitAvailabilityBudgetBurnFast", "firing")
            ),
            ALERT_GUARD,
            "MiniTwitAvailabilityBudgetBurnFast at the pager webhook",
        )
        report("500s injected -> MiniTwitAvailabilityBudgetBurnFast paged", started, delivery.at)
        assert burn["labels"]["slo"] == "availability"
        assert burn["annotations"]["runbook_url"].endswith(
            "/alerts/runbooks/MiniTwitAvailabilityBudgetBurnFast.md"
        )
        held_back = wait_until(
            lambda: [
                a
                for a in alertmanager.alerts("MiniTwitHighErrorRatio")
                if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
            ],
            ALERT_GUARD,
            "MiniTwitHighErrorRatio held back in Alertmanager while the critical burn fires",
        )
        assert held_back[0]["labels"]["severity"] == "warning"
        set_faults(replicas.running, error_ratio=0.0)

        # -- 5. Injected latency: p99 above 0.3 s fires the latency alert.
        set_faults(replicas.running, delay=0.5)
        started = time.monotonic()
        wait_until(
            lambda: prometheus.firing("MiniTwitHighLatency", app="api"),
            ALERT_GUARD,
            "MiniTwitHighLatency firing in Prometheus",
        )
        report("0.5 s delay injected -> MiniTwitHighLatency firing in Prometheus", started)
        wait_until(
            lambda: alertmanager.alerts("MiniTwitHighLatency"),
            ALERT_GUARD,
            "MiniTwitHighLatency received by Alertmanager",
        )
        set_faults(replicas.running, delay=0.0)

        # -- 6. The database stops answering in time: database errors fire.
        with tables_locked(postgres_url):
            started = time.monotonic()
            wait_until(
                lambda: prometheus.firing("MiniTwitDatabaseErrors"),
                ALERT_GUARD,
                "MiniTwitDatabaseErrors firing in Prometheus",
            )
            report("tables locked -> MiniTwitDatabaseErrors firing in Prometheus", started)

        # -- 7. Every query of every rule and dashboard returns data.
        for server in replicas.running:
            exercise_every_metric(server, tag=f"final-{instance(server).replace(':', '-')}")
        check_every_query(prometheus, report)
        traffic.stop()

        # -- 8. The heartbeat kept coming every minute, as a dead man's switch expects.
        beats = [
            delivery.at
            for delivery, _ in receiver.webhook_alerts("/heartbeat", "Watchdog", "firing")
        ]
        gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
        report.write(
            f"Watchdog heartbeats {len(beats)}, apart by {', '.join(f'{g:.1f}' for g in gaps)} s"
        )
        assert len(gaps) >= 2, f"heartbeats at {beats}"
        assert max(gaps) < HEARTBEAT_EVERY * 1.25, f"heartbeat gaps {gaps}"


def check_every_query(prometheus: Prometheus, report: Report) -> None:
    """Rules healthy; every selector, recorded series and dashboard panel has data."""
    queries: dict[str, str] = {}  # query -> where it comes from
    for rule in [*recording_rules(), *alert_rules()]:
        name = rule.get("record") or rule.get("alert")
        for selector in promql.selectors(rule["expr"]):
            queries.setdefault(f"count_over_time({selector_text(selector)}[15m])", f"rule {name}")
    for rule in recording_rules():
        queries.setdefault(
            f"count_over_time({rule['record']}[15m])", f"recorded by {rule['record']}"
        )
    for path in sorted(DASHBOARDS_DIR.glob("**/*.json")):
        dashboard = json.loads(path.read_text())
        for title, expr in panel_targets(dashboard.get("panels", [])):
            queries.setdefault(with_dashboard_variables(expr, dashboard), f"{path.name}: {title}")

    def problems() -> list[str]:
        found = []
        for rule_group in prometheus.get("/api/v1/rules")["data"]["groups"]:
            for rule in rule_group["rules"]:
                if rule["health"] != "ok" or rule.get("lastError"):
                    found.append(f"rule {rule['name']}: {rule['health']} {rule.get('lastError')}")
        for rule in alert_rules():
            _, error = prometheus.try_query(rule["expr"])
            if error:
                found.append(f"alert {rule['alert']}: {error}")
        for query, where in queries.items():
            result, error = prometheus.try_query(query)
            if error or not result:
                found.append(f"{where}: {error or 'no data'} <- {query}")
        return found

    # Rates need two samples after the last traffic, the 30-day group evaluates once a minute.
    last: list[str] = []

    def all_answer() -> bool:
        last[:] = problems()
        return not last

    try:
        wait_until(all_answer, ALERT_GUARD, "every query to return data")
    except AssertionError:
        raise AssertionError("queries without data:\n" + "\n".join(last)) from None
    panels = sum(1 for where in queries.values() if where.endswith(".json") or ".json: " in where)
    report.write(
        f"{len(alert_rules())} alert and {len(recording_rules())} recording rules healthy; "
        f"{len(queries) - panels} rule selectors and recorded series, "
        f"{panels} dashboard panel queries: all return data"
    )
