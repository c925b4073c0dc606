"""What the load benchmarks share: databases, servers to start, the two clients, tables.

- ``minitwit simulate`` (``simulate()``) is the client for scenario traffic:
  it runs in its own process, as an operator would run it, and its JSON
  report is what the benchmarks print from.
- ``wrk`` (``wrk()``) is the client for plain request rates: keep-alive
  connections, a C client that costs the server's cores little.

Every benchmark prints the machine's load average next to its numbers: the
development machine has two cores and other work on it moves every figure.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx

from app.config import Settings
from app.db import migrate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "MINITWIT_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
SIMULATOR_AUTH = "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"  # simulator:super_safe!, the default


def database_url(name: str) -> str:
    """A database named ``name`` on the server of ``$MINITWIT_BENCH_ADMIN_URL``."""
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


async def fresh_database(url: str) -> None:
    """Drop, create and migrate the database ``url`` names."""
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(Settings(database_url=url), progress=lambda _: None)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def wipe(url: str) -> None:
    """Empty the app's tables and reset ``latest`` (keeps the schema)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            'TRUNCATE "user", follower, message RESTART IDENTITY CASCADE; '
            "UPDATE latest SET value = -1"
        )
    finally:
        await conn.close()


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def machine_facts() -> str:
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}); Python {platform.python_version()}; "
        f"load average (1/5/15 min) {load_average()}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- servers -----------------------------------------------------------------------------


@dataclass
class Service:
    """A server process started for a benchmark, on loopback."""

    name: str
    process: subprocess.Popen[bytes]
    url: str  # the API's base URL (or the hello app's)
    log_path: Path
    command: list[str] = field(default_factory=list)
    web_url: str | None = None  # minitwit serve's web port, where /api reaches the API too

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_healthy(service: Service, path: str, timeout: float = 60) -> Service:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            log = service.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{service.name} exited with {service.process.returncode}:\n{log}")
        try:
            if httpx.get(service.url + path, timeout=1, trust_env=False).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    service.stop()
    raise SystemExit(f"{service.name} did not become healthy: see {service.log_path}")


def _launch(
    name: str, command: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def start_minitwit(
    db_url: str, log_dir: Path, workers: int = 1, env: dict[str, str] | None = None
) -> Service:
    """``minitwit serve`` (uvicorn), the way production runs it; ``url`` is the API port."""
    web_port, api_port = free_port(), free_port()
    while api_port == web_port:
        api_port = free_port()
    server_env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "MINITWIT_HOST": "127.0.0.1",
        "MINITWIT_WEB_PORT": str(web_port),
        "MINITWIT_API_PORT": str(api_port),
        "MINITWIT_WORKERS": str(workers),
        **(env or {}),
    }
    command = [str(BIN / "minitwit"), "serve"]
    log_path = log_dir / f"minitwit-{api_port}.log"
    process = _launch("minitwit", command, server_env, log_path)
    service = Service(
        "minitwit serve",
        process,
        f"http://127.0.0.1:{api_port}",
        log_path,
        command,
        web_url=f"http://127.0.0.1:{web_port}",
    )
    return _wait_healthy(service, "/health")


def start_app(
    server: str,
    app: str,
    workers: int,
    log_dir: Path,
    db_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Service:
    """``app`` ("minitwit" or "hello") on ``server`` ("uvicorn", "hypercorn", "granian").

    MiniTwit on uvicorn is ``minitwit serve`` itself. On the other two servers
    it is the same ASGI factory (``app.asgi:create_asgi_app``) on one port, and
    ``url`` is its ``/api`` prefix, which routes to the API app whatever the
    server puts in the ASGI scope (granian gives no ``server`` port to route
    by); each server's own access log is off, as ``minitwit serve`` has it.
    """
    if app == "minitwit" and server == "uvicorn":
        assert db_url is not None
        return start_minitwit(db_url, log_dir, workers, env)
    port = free_port()
    server_env = {**os.environ, **(env or {})}
    if app == "minitwit":
        assert db_url is not None
        metrics_dir = log_dir / f"metrics-{port}"
        metrics_dir.mkdir()
        server_env.update(
            DATABASE_URL=db_url,
            MINITWIT_WEB_PORT=str(port),
            MINITWIT_API_PORT=str(free_port()),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        )
        target, factory = "app.asgi:create_asgi_app", True
        health = "/health"
    elif app == "hello":
        target, factory = "bench.hello:app", False
        health = "/health"
    else:
        raise ValueError(f"unknown app {app!r}")
    if server == "uvicorn":  # hello: served like ``minitwit serve`` serves MiniTwit
        command = [
            str(BIN / "python"), "-m", "bench.hello", "--port", str(port), "--workers", str(workers)
        ]  # fmt: skip
    elif server == "hypercorn":
        hypercorn_target = f"{target}()" if factory else target
        command = [
            str(BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "uvloop", "--log-level", "warning", hypercorn_target,
        ]  # fmt: skip
    elif server == "granian":
        command = [
            str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
            "--http", "1", "--no-ws", "--log-level", "warning",
            *(["--factory"] if factory else []), target,
        ]  # fmt: skip
    else:
        raise ValueError(f"unknown server {server!r}")
    log_path = log_dir / f"{app}-{server}-{port}.log"
    process = _launch(f"{app} on {server}", command, server_env, log_path)
    base = f"http://127.0.0.1:{port}" + ("/api" if app == "minitwit" else "")
    service = Service(f"{app} on {server}", process, base, log_path, command)
    return _wait_healthy(service, health)


@contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        yield service
    finally:
        service.stop()


# --- clients -------------------------------------------------------------------------------


def simulate_command(base_url: str, *args: str) -> list[str]:
    return [str(BIN / "minitwit"), "simulate", *args, "--base-url", base_url]


def simulate(base_url: str, *args: str) -> dict[str, Any]:
    """Run ``minitwit simulate ARGS`` in its own process; its JSON report."""
    command = [*simulate_command(base_url, *args), "--json", "--no-progress"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise SystemExit(f"{shlex.join(command)} failed ({result.returncode}):\n{result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def cpu_seconds(service: Service) -> float:
    """CPU time (user + system) used so far by the server process and its workers.

    Per request, this is steadier than throughput on a shared two-core machine:
    what the server spends does not depend on what else ran meanwhile.
    """
    pids = [service.process.pid]
    for pid in pids:  # grows while it is walked: children, then theirs
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            pids.extend(int(child) for child in children.read_text().split())
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def tweets_script(directory: Path, usernames: Sequence[str]) -> Path:
    """A wrk Lua script that posts tweets as these (registered) users in turn, with ?latest=.

    A write workload of fixed duration, which ``minitwit simulate`` (a fixed
    list of actions) is not: two servers driven at once both stay loaded to the end.
    """
    names = ", ".join(json.dumps(quote(name, safe="")) for name in usernames)
    script = directory / "tweets.lua"
    script.write_text(
        f"""local users = {{{names}}}
local sent = 0
wrk.method = "POST"
wrk.body = '{{"content": "side by side"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{SIMULATOR_AUTH}"
request = function()
  sent = sent + 1
  return wrk.format(nil, "/msgs/" .. users[(sent % #users) + 1] .. "?latest=" .. sent)
end
"""
    )
    return script


def split_scenario(directory: Path, users: int, actions: int, seed: int) -> tuple[Path, Path]:
    """The generated scenario as two files: its registrations, then everything else.

    "Users registered first" is how the course measured its reference API at
    16 clients: the registrations (password hashing, CPU-bound by design) are
    a phase of their own, and the rest is what the throughput is taken on.
    """
    from app.simulator.generate import generate
    from app.simulator.scenario import Command, write_scenario

    scenario = generate(users=users, actions=actions, seed=seed)
    registrations = directory / f"registrations-{seed}.csv"
    rest = directory / f"rest-{seed}.csv"
    write_scenario([a for a in scenario if a.command is Command.REGISTER], registrations)
    write_scenario([a for a in scenario if a.command is not Command.REGISTER], rest)
    return registrations, rest


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers plus socket errors
    requests: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk_command(
    url: str,
    duration: float,
    connections: int,
    threads: int,
    headers: Sequence[str] = (),
    script: Path | None = None,
) -> list[str]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    header_args = [arg for header in headers for arg in ("-H", header)]
    script_args = ["-s", str(script)] if script else []
    return [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
        *header_args, *script_args, url,
    ]  # fmt: skip


def wrk(
    url: str,
    duration: float = 10,
    connections: int = 32,
    threads: int = 2,
    headers: Sequence[str] = (),
    script: Path | None = None,
) -> WrkResult:
    command = wrk_command(url, duration, connections, threads, headers, script)
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    out = result.stdout
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if not (rate and p50 and p99):
        raise SystemExit(f"unexpected wrk output:\n{out}\n{result.stderr}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non_2xx:
        errors += int(non_2xx[1])
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    total = re.search(r"(\d+) requests in", out)
    requests = int(total[1]) if total else 0
    return WrkResult(float(rate[1]), _ms(p50[1]), _ms(p99[1]), errors, requests)


# --- output ---------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into docs/performance.md as it is)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
