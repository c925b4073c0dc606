"""``minitwit serve`` as production runs it: real processes, sockets, signals and databases.

Covers graceful shutdown on SIGTERM, worker processes, ``/health`` and 503s
while the database is unreachable (and recovery when it is back), production
mode's refusal of a development secret, and clear errors for bad settings.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer
from tests.processes import (
    HANG_GUARD,
    STARTUP_GUARD,
    children,
    cmdline,
    is_running,
    launch,
    listening_inode,
    port_of,
    refuses,
    run_minitwit,
    socket_inodes,
    two_free_ports,
    wait_until,
)

GOOD_KEY = "k" * 32
OUTAGE_MESSAGE = "The database is unavailable; try again shortly"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def user_exists(database_url: str, username: str) -> bool:
    if database_url.startswith("sqlite://"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as conn:
            row = conn.execute('SELECT 1 FROM "user" WHERE username = ?', (username,)).fetchone()
        return row is not None

    async def query() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval('SELECT 1 FROM "user" WHERE username = $1', username) == 1
        finally:
            await conn.close()

    return asyncio.run(query())


def read_head(conn: socket.socket) -> bytes:
    """Read one response head (status line and headers) byte by byte."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = conn.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed after {head!r}")
        head += chunk
    return head


# --- graceful shutdown --------------------------------------------------------


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_sigterm_lets_the_in_flight_request_finish_then_exits_0(
    database_url: str, tmp_path: Path, servers: list[LiveServer], workers: int
) -> None:
    server = launch(database_url, tmp_path, workers=workers)
    servers.append(server)
    web_port, api_port = port_of(server.web_url), port_of(server.api_url)
    name = unique("graceful")
    body = json.dumps({"username": name, "email": f"{name}@example.com", "pwd": "pw"}).encode()

    idle = http.client.HTTPConnection("127.0.0.1", api_port, timeout=HANG_GUARD)
    idle.request("GET", "/latest")
    assert idle.getresponse().read()  # answered; the connection stays open (keep-alive)
    assert idle.sock is not None

    with socket.create_connection(("127.0.0.1", api_port), timeout=HANG_GUARD) as conn:
        conn.sendall(
            b"POST /register HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            b"Expect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        # The server asks for the body only once the app is reading it: from
        # here on the request is in the app, waiting for the rest.
        assert read_head(conn).startswith(b"HTTP/1.1 100 ")
        conn.sendall(body[:10])

        server.process.send_signal(signal.SIGTERM)

        wait_until(
            lambda: refuses(api_port) and refuses(web_port),
            what="both ports to refuse new connections after SIGTERM",
        )
        assert idle.sock.recv(1) == b"", "an idle keep-alive connection must be closed"
        assert server.process.poll() is None, "exited with a request still in flight"

        conn.sendall(body[10:])
        response = http.client.HTTPResponse(conn)
        response.begin()
        assert response.status == 204
        assert response.getheader("connection") == "close"
        response.read()
    idle.close()

    assert server.process.wait(HANG_GUARD) == 0, server.log()
    assert user_exists(database_url, name), "the in-flight registration was not stored"


# --- worker processes ---------------------------------------------------------


def worker_pids(parent: int) -> list[int]:
    return [pid for pid in children(parent) if "spawn_main" in cmdline(pid)]


async def burst(server: LiveServer, prefix: str, size: int) -> None:
    """``size`` users register and post at once, half through each port."""
    bases = [server.api_url, f"{server.web_url}/api"]
    names = [f"{prefix}{i}" for i in range(size)]
    limits = httpx.Limits(max_connections=size)
    async with httpx.AsyncClient(timeout=HANG_GUARD, limits=limits) as client:
        registered = await asyncio.gather(
            *(
                client.post(
                    f"{bases[i % 2]}/register",
                    json={"username": name, "email": f"{name}@example.com", "pwd": "pw"},
                )
                for i, name in enumerate(names)
            )
        )
        assert [r.status_code for r in registered] == [204] * size, [
            r.text for r in registered if r.status_code != 204
        ]
        posted = await asyncio.gather(
            *(
                client.post(
                    f"{bases[(i + 1) % 2]}/msgs/{name}",
                    json={"content": f"hello from {name}"},
                    headers=SIMULATOR_AUTH,
                )
                for i, name in enumerate(names)
            )
        )
        assert [r.status_code for r in posted] == [204] * size, [
            r.text for r in posted if r.status_code != 204
        ]
        read = await asyncio.gather(
            *(
                client.get(f"{bases[i % 2]}/msgs/{name}", headers=SIMULATOR_AUTH)
                for i, name in enumerate(names)
            )
        )
    assert [r.json() for r in read] == [
        [{"content": f"hello from {name}", "pub_date": r.json()[0]["pub_date"], "user": name}]
        for name, r in zip(names, read, strict=True)
    ]


@pytest.mark.slow
def test_two_workers_serve_both_ports_and_all_stop_on_sigterm(
    database_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = launch(database_url, tmp_path, workers=2)
    servers.append(server)
    web_port, api_port = port_of(server.web_url), port_of(server.api_url)
    listeners = {listening_inode(web_port), listening_inode(api_port)}
    assert None not in listeners

    def two_workers_listening_on_both_ports() -> list[int] | None:
        workers = worker_pids(server.process.pid)
        holding = [pid for pid in workers if listeners <= socket_inodes(pid)]
        return workers if len(workers) == 2 and holding == workers else None

    workers = wait_until(
        two_workers_listening_on_both_ports,
        STARTUP_GUARD,
        "two worker processes, each listening on both ports",
    )

    for base in (server.web_url, server.api_url):
        response = httpx.get(f"{base}/health", timeout=HANG_GUARD)
        assert response.status_code == 200
    asyncio.run(burst(server, unique("burst") + "-", 40))
    assert worker_pids(server.process.pid) == workers, "a worker died under the burst"

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(HANG_GUARD) == 0, server.log()
    wait_until(lambda: not any(is_running(pid) for pid in workers), what="every worker to exit")
    assert refuses(web_port)
    assert refuses(api_port)


# --- /health and database outages -------------------------------------------


def test_health_is_200_on_both_ports_while_the_database_answers(live: LiveServer) -> None:
    for base in (live.web_url, live.api_url):
        response = httpx.get(f"{base}/health", timeout=HANG_GUARD)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}


def assert_unavailable(server: LiveServer) -> None:
    """Every port answers, and promptly: 503 with a JSON body, never a 500 or a hang."""
    with httpx.Client(timeout=HANG_GUARD) as client:
        for base in (server.web_url, server.api_url):
            health = client.get(f"{base}/health")
            assert health.status_code == 503
            assert health.json() == {"status": "unavailable", "database": "unreachable"}
        name = unique("outage")
        api_calls = [
            client.get(f"{server.api_url}/latest"),
            client.get(f"{server.web_url}/api/latest"),
            client.get(f"{server.api_url}/msgs", headers=SIMULATOR_AUTH),
            client.post(
                f"{server.api_url}/register?latest=5",
                json={"username": name, "email": "a@b", "pwd": "pw"},
            ),
            client.post(
                f"{server.api_url}/msgs/{name}", json={"content": "hi"}, headers=SIMULATOR_AUTH
            ),
        ]
        for response in api_calls:
            assert response.status_code == 503, response.text
            assert response.json() == {"status": 503, "error_msg": OUTAGE_MESSAGE}
        page = client.get(f"{server.web_url}/public")
        assert page.status_code == 503
        assert "cannot reach its database" in page.text


def assert_available(server: LiveServer) -> None:
    with httpx.Client(timeout=HANG_GUARD) as client:
        for base in (server.web_url, server.api_url):
            assert client.get(f"{base}/health").json() == {"status": "ok", "database": "ok"}
        name = unique("back")
        registered = client.post(
            f"{server.api_url}/register", json={"username": name, "email": "a@b", "pwd": "pw"}
        )
        assert registered.status_code == 204, registered.text
        assert client.get(f"{server.api_url}/latest").status_code == 200


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "kind",
    [
        "nothing listening",
        # Every request waits out the connect timeout (1 s here) before its 503.
        pytest.param("never answers", marks=pytest.mark.slow),
    ],
)
def test_unreachable_database_gives_503s_not_500s_or_hangs(
    tmp_path: Path, servers: list[LiveServer], kind: str, request: pytest.FixtureRequest
) -> None:
    port = (
        postgres.free_port()
        if kind == "nothing listening"
        else request.getfixturevalue("black_hole")
    )
    url = f"postgres://postgres@127.0.0.1:{port}/minitwit"
    # The pool is lazy: the server starts even though the database is not there.
    server = launch(url, tmp_path, env={"MINITWIT_DB_CONNECT_TIMEOUT": "1"}, healthy=False)
    servers.append(server)
    assert_unavailable(server)
    assert_unavailable(server)  # and again: nothing got stuck or broken by the first round
    assert server.process.poll() is None


def _pg_ctl(data_dir: str, *args: str) -> None:
    pg_ctl = postgres._pg_binary("pg_ctl")
    assert pg_ctl is not None
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [*run_as, pg_ctl, "-D", data_dir, "-w", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def throwaway_cluster() -> Iterator[str]:
    if postgres._pg_binary("initdb") is None or postgres._pg_binary("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl are not installed")
    with postgres.throwaway_cluster() as admin:
        yield admin


@pytest.mark.slow
def test_health_follows_the_database_down_and_back_up_without_a_restart(
    throwaway_cluster: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    admin = throwaway_cluster
    url = asyncio.run(postgres.create_database(admin))
    migrated = run_minitwit("migrate", DATABASE_URL=url)
    assert migrated.returncode == 0, migrated.stderr

    async def data_directory() -> str:
        conn = await asyncpg.connect(admin)
        try:
            return str(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    data_dir = asyncio.run(data_directory())
    port = port_of(admin.rsplit("/", 1)[0])
    server = launch(url, tmp_path, env={"MINITWIT_DB_CONNECT_TIMEOUT": "1"})
    servers.append(server)
    assert_available(server)

    _pg_ctl(data_dir, "-m", "fast", "stop")
    assert_unavailable(server)

    options = f"-p {port} -k {Path(data_dir).parent} -c listen_addresses=127.0.0.1"
    _pg_ctl(data_dir, "-l", str(Path(data_dir).parent / "log"), "-o", options, "start")

    def healthy_on_both_ports() -> bool:
        return all(
            httpx.get(f"{base}/health", timeout=HANG_GUARD).status_code == 200
            for base in (server.web_url, server.api_url)
        )

    wait_until(healthy_on_both_ports, what="/health to be 200 again")
    assert_available(server)
    assert server.process.poll() is None


# --- production mode and bad settings ---------------------------------------


def serve_refused(**env: str) -> subprocess.CompletedProcess[str]:
    """Run ``minitwit serve`` with a configuration it must refuse; check it never listened."""
    web_port, api_port = two_free_ports()
    settings = {"MINITWIT_WEB_PORT": str(web_port), "MINITWIT_API_PORT": str(api_port), **env}
    result = run_minitwit("serve", timeout=HANG_GUARD * 2, **settings)
    assert "Traceback" not in result.stderr, result.stderr
    assert "MiniTwit web UI on" not in result.stdout  # printed once the ports are bound
    assert refuses(web_port)
    assert refuses(api_port)
    return result


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "MINITWIT_ENV=production needs MINITWIT_SECRET_KEY"),
        ({"MINITWIT_SECRET_KEY": "k" * 31}, "at least 32 characters"),
    ],
    ids=["no secret", "short secret"],
)
def test_production_refuses_to_start_with_a_development_secret(
    sqlite_url: str, env: dict[str, str], expected: str
) -> None:
    result = serve_refused(MINITWIT_ENV="production", DATABASE_URL=sqlite_url, **env)
    assert result.returncode == 2
    assert "minitwit: configuration error:" in result.stderr
    assert expected in result.stderr


def test_production_with_a_development_secret_spelled_out_is_refused(sqlite_url: str) -> None:
    from app.config import DEVELOPMENT_SECRET

    result = serve_refused(
        MINITWIT_ENV="production", DATABASE_URL=sqlite_url, MINITWIT_SECRET_KEY=DEVELOPMENT_SECRET
    )
    assert result.returncode == 2
    assert "MINITWIT_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MINITWIT_WORKERS": "abc"}, "MINITWIT_WORKERS"),
        ({"MINITWIT_WORKERS": "0"}, "MINITWIT_WORKERS"),
        ({"MINITWIT_API_PORT": "same"}, "MINITWIT_WEB_PORT and MINITWIT_API_PORT"),
        ({"DATABASE_URL": "mysql://root@127.0.0.1/minitwit"}, "DATABASE_URL"),
        ({"MINITWIT_ENV": "staging"}, "MINITWIT_ENV"),
        ({"MINITWIT_DB_TIMEOUT": "-1"}, "MINITWIT_DB_TIMEOUT"),
        ({"MINITWIT_SECURE_COOKIES": "maybe"}, "MINITWIT_SECURE_COOKIES"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value.values())),
)
def test_bad_settings_exit_2_with_a_clear_message(
    sqlite_url: str, env: dict[str, str], names: str
) -> None:
    web_port, api_port = two_free_ports()
    settings = {"DATABASE_URL": sqlite_url, "MINITWIT_WEB_PORT": str(web_port), **env}
    if settings.get("MINITWIT_API_PORT") == "same":
        settings["MINITWIT_API_PORT"] = str(web_port)
    else:
        settings.setdefault("MINITWIT_API_PORT", str(api_port))
    result = serve_refused(**settings)
    assert result.returncode == 2
    assert result.stderr.startswith("minitwit: configuration error:")
    assert names in result.stderr


def test_a_port_in_use_is_a_clear_error_not_a_traceback(sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        other = postgres.free_port()
        result = run_minitwit(
            "serve",
            timeout=HANG_GUARD * 2,
            DATABASE_URL=sqlite_url,
            MINITWIT_WEB_PORT=str(other),
            MINITWIT_API_PORT=str(port),
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"minitwit serve: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_production_starts_with_a_real_secret_and_marks_the_session_cookie_secure(
    sqlite_url: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = launch(
        sqlite_url, tmp_path, env={"MINITWIT_ENV": "production", "MINITWIT_SECRET_KEY": GOOD_KEY}
    )
    servers.append(server)
    cookie = session_cookie(server)
    assert "; Secure" in cookie
    assert "; HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_outside_production_the_session_cookie_is_not_secure_only(live: LiveServer) -> None:
    cookie = session_cookie(live)
    assert "Secure" not in cookie
    assert "; HttpOnly" in cookie


def session_cookie(server: LiveServer) -> str:
    """Register through the web form; return the session cookie the redirect sets."""
    name = unique("cookie")
    response = httpx.post(
        f"{server.web_url}/register",
        data={
            "username": name,
            "email": f"{name}@example.com",
            "password": "secret-pw",
            "password2": "secret-pw",
        },
        timeout=HANG_GUARD,
    )
    assert response.status_code == 302, response.text
    cookies = [c for c in response.headers.get_list("set-cookie") if "minitwit_session=" in c]
    assert len(cookies) == 1, response.headers
    return cookies[0]
