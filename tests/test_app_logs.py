"""The app's own logs, read from a real server's stdout: one ECS JSON object per line.

Most tests drive ``minitwit serve`` (the session's ``live`` server, or one
started with its own environment) over HTTP and parse what it wrote. The
Logstash tests run real TCP listeners in the test: one that reads, one that
stops, one that accepts and never reads.
"""

from __future__ import annotations

import re
import socket
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import __version__
from app.config import DEVELOPMENT_SECRET
from app.observability.logs import FIELDS, SENSITIVE_NAMES
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer
from tests.db_state import fetch
from tests.logdocs import PASSWORD, app_log_lines, flatten, parse_lines
from tests.processes import HANG_GUARD, launch, wait_until

ECS_BASE = {"@timestamp", "log.level", "message", "ecs.version", "service.name", "log.logger"}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def lines_of(server: LiveServer) -> list[dict[str, Any]]:
    return parse_lines(server.log())


def access_events(server: LiveServer) -> list[dict[str, Any]]:
    return [
        flatten(line)
        for line in lines_of(server)
        if flatten(line).get("event.dataset") == "minitwit.access"
    ]


def with_request_id(server: LiveServer, request_id: str) -> list[dict[str, Any]]:
    return [
        flat
        for flat in (flatten(line) for line in lines_of(server))
        if flat.get("http.request.id") == request_id
    ]


def wait_for_access(server: LiveServer, request_id: str) -> dict[str, Any]:
    """The access event of one request (written once its response went out)."""

    def written() -> dict[str, Any] | None:
        for flat in with_request_id(server, request_id):
            if flat.get("event.dataset") == "minitwit.access":
                return flat
        return None

    return wait_until(written, what=f"the access event of request {request_id}")


# --- shape ----------------------------------------------------------------------------


def test_every_line_is_one_ecs_json_object_with_known_fields(live: LiveServer) -> None:
    rid = unique("shape-")
    httpx.get(f"{live.web_url}/public", headers={"X-Request-ID": rid})
    httpx.get(f"{live.api_url}/msgs", headers={**SIMULATOR_AUTH, "X-Request-ID": rid + "-api"})
    wait_for_access(live, rid + "-api")
    lines = lines_of(live)  # fails on any line that is not a JSON object
    assert lines, "the server wrote nothing"
    assert "MiniTwit web UI on" in lines[0]["message"]  # even the first line is JSON
    for line in lines:
        flat = flatten(line)
        assert set(flat) >= ECS_BASE, line
        assert flat["service.name"] == "minitwit"
        assert flat["service.version"] == __version__
        assert flat["log.level"] in {"debug", "info", "warning", "error", "critical"}
        unknown = set(flat) - set(FIELDS)
        assert not unknown, f"fields not declared in FIELDS: {sorted(unknown)} in {line}"


def test_one_access_event_per_request_with_duration_and_http_fields(live: LiveServer) -> None:
    ids = [unique("one-") for _ in range(5)]
    with httpx.Client() as client:
        for rid in ids[:3]:
            assert client.get(f"{live.web_url}/public", headers={"X-Request-ID": rid}).is_success
        missing = client.get(f"{live.web_url}/no/such/page", headers={"X-Request-ID": ids[3]})
        assert missing.status_code == 404
        api = client.get(f"{live.web_url}/api/latest", headers={"X-Request-ID": ids[4]})
        assert api.status_code == 200
    wait_for_access(live, ids[-1])
    events = access_events(live)
    for rid in ids:
        mine = [event for event in events if event["http.request.id"] == rid]
        assert len(mine) == 1, f"{len(mine)} access events for {rid}"
        event = mine[0]
        assert isinstance(event["event.duration"], int)
        assert event["event.duration"] > 0
        assert event["http.request.method"] == "GET"
        assert event["client.ip"] == "127.0.0.1"
        assert event["log.logger"] == "minitwit.access"
        assert event["event.action"] == "http-request"
        assert event["log.level"] == "info"
    by_id = {event["http.request.id"]: event for event in events}
    assert by_id[ids[0]]["http.route"] == "/public"
    assert by_id[ids[0]]["http.response.status_code"] == 200
    assert by_id[ids[0]]["labels.app"] == "web"
    assert by_id[ids[3]]["http.response.status_code"] == 404
    assert by_id[ids[3]]["url.path"] == "/no/such/page"
    assert by_id[ids[4]]["labels.app"] == "api"  # /api/... on the web port is the API app
    assert by_id[ids[4]]["url.path"] == "/api/latest"
    assert by_id[ids[4]]["http.route"] == "/latest"


def test_a_name_that_is_not_valid_unicode_is_still_one_json_line(live: LiveServer) -> None:
    """A lone surrogate ("\\ud800" in the request's JSON) used to make the line unwritable:
    the event was lost and a Python traceback took its place on stdout."""
    name = unique("surrogate")
    httpx.post(
        f"{live.api_url}/register",
        json={"username": name, "email": f"{name}@x.dk", "pwd": PASSWORD},
    )
    rid = unique("bad-unicode-")
    response = httpx.post(
        f"{live.api_url}/fllws/{name}",
        content=b'{"follow": "\\ud800"}',
        headers={**SIMULATOR_AUTH, "Content-Type": "application/json", "X-Request-ID": rid},
    )
    assert response.status_code == 404
    wait_for_access(live, rid)
    (event,) = [
        line for line in with_request_id(live, rid) if line["event.action"] == "user-not-found"
    ]
    assert event["user.target.name"] == "\ud800"
    lines_of(live)  # every line still parses


# --- request id ---------------------------------------------------------------------


def test_request_id_is_taken_from_the_header_echoed_and_on_every_line(live: LiveServer) -> None:
    name, rid = unique("rid"), unique("req-")
    response = httpx.post(
        f"{live.api_url}/register",
        json={"username": name, "email": f"{name}@x.dk", "pwd": PASSWORD},
        headers={"X-Request-ID": rid},
    )
    assert response.status_code == 204
    assert response.headers["x-request-id"] == rid
    wait_for_access(live, rid)
    lines = with_request_id(live, rid)
    actions = {line["event.action"] for line in lines}
    assert {"user-registered", "http-request"} <= actions, lines
    registered = next(line for line in lines if line["event.action"] == "user-registered")
    assert registered["user.name"] == name


def test_request_id_is_generated_when_absent_or_not_sane(live: LiveServer) -> None:
    plain = httpx.get(f"{live.web_url}/public")
    generated = plain.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    hostile = httpx.get(f"{live.web_url}/public", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    replaced = hostile.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert wait_for_access(live, generated)["url.path"] == "/public"
    assert wait_for_access(live, replaced)["url.path"] == "/public"
    assert "a b" not in live.log()


def test_user_name_is_on_access_events_where_known(live: LiveServer) -> None:
    name = unique("who")
    with httpx.Client(base_url=live.web_url) as web:
        web.post(
            "/register",
            data={
                "username": name,
                "email": f"{name}@x.dk",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        )
        assert web.post("/login", data={"username": name, "password": PASSWORD}).status_code == 302
        signed_in = web.get("/", headers={"X-Request-ID": unique("web-")})
    anonymous = httpx.get(f"{live.web_url}/public", headers={"X-Request-ID": unique("anon-")})
    api = httpx.post(
        f"{live.api_url}/msgs/{name}",
        json={"content": "hi"},
        headers={**SIMULATOR_AUTH, "X-Request-ID": unique("api-")},
    )
    assert api.status_code == 204
    assert wait_for_access(live, signed_in.headers["x-request-id"])["user.name"] == name
    assert "user.name" not in wait_for_access(live, anonymous.headers["x-request-id"])
    assert wait_for_access(live, api.headers["x-request-id"])["user.name"] == name


# --- domain events, slow requests, errors, level -------------------------------------


def test_domain_events_are_logged_at_info(live: LiveServer) -> None:
    alice, bob = unique("alice"), unique("bob")
    with httpx.Client(base_url=live.api_url, headers=SIMULATOR_AUTH) as api:
        for name in (alice, bob):
            api.post("/register", json={"username": name, "email": f"{name}@x.dk", "pwd": PASSWORD})
        api.post(f"/msgs/{alice}", json={"content": "hello"})
        api.post(f"/fllws/{alice}", json={"follow": bob})
        api.post(f"/fllws/{alice}", json={"unfollow": bob})
        assert api.post(f"/msgs/{alice}-ghost", json={"content": "boo"}).status_code == 404
    with httpx.Client(base_url=live.web_url) as web:
        web.post("/login", data={"username": alice, "password": "not-the-password"})
        web.post("/login", data={"username": alice, "password": PASSWORD})
        last = web.get("/public")
    wait_for_access(live, last.headers["x-request-id"])
    seen: dict[str, dict[str, Any]] = {}
    for flat in map(flatten, lines_of(live)):
        if flat.get("event.dataset") == "minitwit.events":
            who = flat.get("user.name") or flat.get("user.target.name")
            if who in {alice, bob, f"{alice}-ghost"}:
                seen.setdefault(flat["event.action"], flat)
    expected = {
        "user-registered",
        "message-posted",
        "user-followed",
        "user-unfollowed",
        "user-not-found",
        "user-login-failed",
        "user-login",
    }
    assert expected <= set(seen), sorted(seen)
    for action in expected:
        assert seen[action]["log.level"] == "info", seen[action]
        assert seen[action]["http.request.id"], seen[action]
    assert seen["user-followed"]["user.target.name"] == bob
    assert seen["user-not-found"]["user.target.name"] == f"{alice}-ghost"
    assert seen["user-not-found"]["labels.app"] == "api"
    assert seen["user-login-failed"]["event.outcome"] == "failure"


def set_delay(server: LiveServer, seconds: float) -> None:
    response = httpx.put(f"{server.web_url}/_faults", json={"delay_seconds": seconds})
    assert response.status_code == 200, response.text


def test_slow_requests_are_warnings_above_the_configured_threshold(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = launch(
        sqlite_url,
        tmp_path,
        env={"MINITWIT_SLOW_REQUEST_SECONDS": "0.15", "MINITWIT_FAULT_INJECTION": "1"},
    )
    servers.append(server)
    fast = httpx.get(f"{server.web_url}/public", timeout=HANG_GUARD)
    set_delay(server, 0.3)
    slow = httpx.get(f"{server.web_url}/public", timeout=HANG_GUARD)
    set_delay(server, 0)
    fast_event = wait_for_access(server, fast.headers["x-request-id"])
    slow_event = wait_for_access(server, slow.headers["x-request-id"])
    assert fast_event["log.level"] == "info"
    assert fast_event["event.action"] == "http-request"
    assert slow_event["log.level"] == "warning"
    assert slow_event["event.action"] == "slow-request"
    assert slow_event["event.duration"] >= 0.3e9
    assert "(slow)" in slow_event["message"]


def test_level_comes_from_the_environment(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = launch(
        sqlite_url,
        tmp_path,
        env={
            "MINITWIT_LOG_LEVEL": "warning",
            "MINITWIT_SLOW_REQUEST_SECONDS": "0.15",
            "MINITWIT_FAULT_INJECTION": "1",
        },
    )
    servers.append(server)
    name = unique("quiet")
    httpx.post(
        f"{server.api_url}/register",
        json={"username": name, "email": f"{name}@x.dk", "pwd": PASSWORD},
        timeout=HANG_GUARD,
    )
    set_delay(server, 0.3)
    slow = httpx.get(f"{server.web_url}/public", timeout=HANG_GUARD)
    set_delay(server, 0)
    assert wait_for_access(server, slow.headers["x-request-id"])["log.level"] == "warning"
    levels = {line["log.level"] for line in lines_of(server)}
    assert levels == {"warning"}, levels  # no info at all: no access, no domain events


def test_a_request_the_client_abandoned_is_499_not_a_500(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = launch(sqlite_url, tmp_path, env={"MINITWIT_FAULT_INJECTION": "1"})
    servers.append(server)
    set_delay(server, 1.0)
    rid = unique("gone-")
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{server.web_url}/public", headers={"X-Request-ID": rid}, timeout=0.2)
    event = wait_for_access(server, rid)
    set_delay(server, 0)
    assert event["http.response.status_code"] == 499
    assert event["event.outcome"] == "unknown"


def test_errors_are_logged_with_their_stack_trace_and_request_id(tmp_path: Path) -> None:
    """In-process (a route that raises does not exist in the served app): the real web app,
    middleware, error handler and ECS formatter, with an extra route raising RuntimeError."""
    lines = [flatten(line) for line in app_log_lines(tmp_path)]
    errors = [line for line in lines if line["log.level"] == "error"]
    assert len(errors) == 1, errors
    error = errors[0]
    assert error["event.action"] == "internal-error"
    assert error["error.type"] == "RuntimeError"
    assert error["error.message"] == "a bug, on purpose"
    assert "raise RuntimeError" in error["error.stack_trace"]
    assert "boom" in error["error.stack_trace"]
    access = [
        line
        for line in lines
        if line.get("event.dataset") == "minitwit.access"
        and line["http.request.id"] == error["http.request.id"]
    ]
    assert len(access) == 1
    assert access[0]["http.response.status_code"] == 500
    assert access[0]["event.outcome"] == "failure"


def test_an_unreachable_database_is_a_warning_event_per_failed_request(
    tmp_path: Path, servers: list[LiveServer]
) -> None:
    url = f"postgres://postgres@127.0.0.1:{postgres.free_port()}/minitwit"
    server = launch(url, tmp_path, env={"MINITWIT_DB_CONNECT_TIMEOUT": "1"}, healthy=False)
    servers.append(server)
    response = httpx.get(f"{server.api_url}/latest", timeout=HANG_GUARD)
    assert response.status_code == 503
    rid = response.headers["x-request-id"]
    wait_for_access(server, rid)
    lines = with_request_id(server, rid)
    failure = next(line for line in lines if line.get("event.action") == "database-unavailable")
    assert failure["log.level"] == "warning"
    assert failure["error.type"]
    access = next(line for line in lines if line.get("event.dataset") == "minitwit.access")
    assert access["http.response.status_code"] == 503


# --- secrets --------------------------------------------------------------------------


def test_no_password_hash_cookie_authorization_or_secret_key_is_ever_logged(
    live: LiveServer,
) -> None:
    name = unique("secret")
    password = f"Pw-{uuid.uuid4().hex}"
    web_name = unique("websecret")
    with httpx.Client(base_url=live.api_url) as api:
        api.post("/register", json={"username": name, "email": f"{name}@x.dk", "pwd": password})
        api.post(f"/msgs/{name}", json={"content": "hi"}, headers=SIMULATOR_AUTH)
        api.get("/msgs", headers={"Authorization": "Basic d3Jvbmc6d3Jvbmc="})  # wrong: 403
    with httpx.Client(base_url=live.web_url) as web:
        web.post(
            "/register",
            data={
                "username": web_name,
                "email": f"{web_name}@x.dk",
                "password": password,
                "password2": password,
            },
        )
        web.post("/login", data={"username": web_name, "password": password + "-typo"})
        assert (
            web.post("/login", data={"username": web_name, "password": password}).status_code == 302
        )
        cookie = web.cookies.get("minitwit_session")
        assert cookie
        web.post("/add_message", data={"text": "hello"})
        last = web.get("/", headers={"Cookie": f"minitwit_session={cookie}"})
    wait_for_access(live, last.headers["x-request-id"])

    async def hashes() -> list[str]:
        rows = await fetch(
            live.database_url,
            'SELECT pw_hash FROM "user" WHERE username IN ($1, $2)',
            name,
            web_name,
        )
        return [str(row[0]) for row in rows]

    import asyncio

    pw_hashes = asyncio.run(hashes())
    assert len(pw_hashes) == 2
    text = live.log()
    assert name in text
    assert web_name in text
    forbidden = {
        "the password": password,
        "the simulator's Authorization value": SIMULATOR_AUTH["Authorization"].split()[1],
        "a wrong Authorization value": "d3Jvbmc6d3Jvbmc=",
        "the session cookie": cookie,
        "the secret key": DEVELOPMENT_SECRET,
        "the simulator's password": "super_safe!",
        **{f"password hash {i}": pw_hash for i, pw_hash in enumerate(pw_hashes)},
        **{f"hash body {i}": pw_hash.rsplit("$", 1)[-1] for i, pw_hash in enumerate(pw_hashes)},
    }
    leaked = [what for what, value in forbidden.items() if value in text]
    assert not leaked, f"found in the log: {leaked}"
    for line in lines_of(live):
        names = {part.lower() for field in flatten(line) for part in field.split(".")}
        assert not names & SENSITIVE_NAMES, line


# --- python-logstash over TCP ---------------------------------------------------------


class Listener:
    """A real TCP server standing in for Logstash's tcp/json_lines input: it keeps every line."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.lines: list[dict[str, Any]] = []
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            with self._lock:
                self.lines.extend(parse_lines(b"\n".join(complete).decode()))

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.lines)

    def stop(self) -> None:
        """Logstash goes away: no more accepting, open connections reset."""
        self._stopped.set()
        self.sock.close()
        for conn in self.connections:
            conn.close()


class Stalled:
    """A Logstash that accepts connections and never reads a byte (a stalled pipeline)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        # A small receive window, set before listen() so accepted sockets inherit it.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def shipping_env(port: int) -> dict[str, str]:
    return {
        "LOGSTASH_HOST": "127.0.0.1",
        "LOGSTASH_PORT": str(port),
        "MINITWIT_LOGSTASH_QUEUE_SIZE": "50",
        "MINITWIT_LOG_DROP_REPORT_SECONDS": "1",
    }


def latencies(server: LiveServer, count: int) -> list[float]:
    """Seconds per request for ``count`` sequential requests (each one logs an access event)."""
    times = []
    with httpx.Client(timeout=HANG_GUARD) as client:
        for _ in range(count):
            start = time.perf_counter()
            assert client.get(f"{server.api_url}/latest").status_code == 200
            times.append(time.perf_counter() - start)
    return times


def dropped(server: LiveServer) -> float:
    text = httpx.get(f"{server.web_url}/metrics", timeout=HANG_GUARD).text
    match = re.search(r"^minitwit_log_events_dropped_total ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def assert_flat(times: list[float], baseline: list[float], what: str) -> None:
    """A hang guard, not a performance claim: generous against the baseline's median."""
    median, base = statistics.median(times), statistics.median(baseline)
    assert median < max(5 * base, base + 0.05), (
        f"{what}: median {median * 1000:.1f} ms against {base * 1000:.1f} ms without Logstash"
    )
    assert max(times) < HANG_GUARD


def drop_reports(server: LiveServer) -> list[dict[str, Any]]:
    return [
        flat
        for flat in map(flatten, lines_of(server))
        if flat.get("event.action") == "log-events-dropped"
    ]


def baseline_latencies(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer], count: int
) -> list[float]:
    """Request latencies of a server that ships nothing to Logstash: the comparison."""
    server = launch(sqlite_url, tmp_path)
    servers.append(server)
    baseline = latencies(server, count)
    server.stop()
    return baseline


def test_events_ship_to_logstash_over_tcp_and_a_dead_logstash_costs_requests_nothing(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    count = 300
    baseline = baseline_latencies(sqlite_url, tmp_path, servers, count)

    listener = Listener()
    try:
        server = launch(sqlite_url, tmp_path, env=shipping_env(listener.port))
        servers.append(server)
        ids = [unique("ship-") for _ in range(5)]
        for rid in ids:
            httpx.get(f"{server.web_url}/public", headers={"X-Request-ID": rid})

        def shipped() -> list[dict[str, Any]] | None:
            got = [
                line
                for line in listener.received()
                if flatten(line).get("http.request.id") in ids
                and flatten(line).get("event.dataset") == "minitwit.access"
            ]
            return got if len(got) == len(ids) else None

        received = wait_until(shipped, what="the access events at the Logstash listener")
        on_stdout = {event["http.request.id"]: event for event in access_events(server)}
        for line in received:
            flat = flatten(line)
            assert flat == on_stdout[flat["http.request.id"]]  # the same ECS document both ways
        assert dropped(server) == 0
    finally:
        listener.stop()  # Logstash goes away while the app keeps serving

    started = time.monotonic()
    assert_flat(latencies(server, count), baseline, "Logstash gone")
    wait_until(lambda: dropped(server) > 0, what="dropped events to be counted")
    reports = wait_until(lambda: drop_reports(server), what="a report of the dropped events")
    elapsed = time.monotonic() - started
    assert all(report["log.level"] == "warning" for report in reports)
    for line in map(flatten, lines_of(server)):
        assert set(line) <= set(FIELDS), line  # the reports too
    assert len(reports) <= elapsed / 1 + 2  # once per interval (1 s here), not once per event
    assert dropped(server) > len(reports)


def test_a_logstash_that_never_reads_costs_requests_nothing(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    count = 300
    baseline = baseline_latencies(sqlite_url, tmp_path, servers, count)

    stalled = Stalled()
    try:
        server = launch(sqlite_url, tmp_path, env=shipping_env(stalled.port))
        servers.append(server)
        assert_flat(latencies(server, count), baseline, "Logstash stalled")
        wait_until(lambda: stalled.held, what="the app to connect to the stalled Logstash")
        wait_until(lambda: dropped(server) > 0, what="dropped events to be counted")
    finally:
        stalled.stop()
