"""Run the real ``minitwit`` console script and look at its processes and sockets.

Helpers for the tests of ``minitwit serve`` and the CLI: no mocks, only
subprocesses, loopback sockets and what Linux shows under ``/proc``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from tests import postgres
from tests.conftest import ROOT, LiveServer

T = TypeVar("T")

# Upper bounds against hangs, not performance claims: a test fails when one is
# exceeded, but nothing asserts how fast anything is.
HANG_GUARD = 15.0
STARTUP_GUARD = 60.0

_CONFIG_PREFIXES = ("MINITWIT_", "SIMULATOR_", "LOGSTASH_")
_CONFIG_NAMES = {"DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"}


def minitwit_command() -> list[str]:
    """The installed console script, else the module it points at."""
    script = Path(sys.executable).parent / "minitwit"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "app.cli"]


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any MiniTwit configuration, plus ``overrides``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_CONFIG_PREFIXES) and key not in _CONFIG_NAMES
    }
    env.update(overrides)
    return env


def run_minitwit(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*minitwit_command(), *args],
        env=clean_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(
    probe: Callable[[], T | None], timeout: float = HANG_GUARD, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def refuses(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def two_free_ports() -> tuple[int, int]:
    web, api = postgres.free_port(), postgres.free_port()
    while api == web:
        api = postgres.free_port()
    return web, api


def launch(
    database_url: str,
    log_dir: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    healthy: bool = True,
) -> LiveServer:
    """``minitwit serve`` through the console script, on free loopback ports.

    Returns once both ports answer ``/health``: with 200 when ``healthy``, with
    anything at all otherwise (a server whose database is down).
    """
    web_port, api_port = two_free_ports()
    settings = {
        "MINITWIT_ENV": "test",
        "DATABASE_URL": database_url,
        "MINITWIT_HOST": "127.0.0.1",
        "MINITWIT_WEB_PORT": str(web_port),
        "MINITWIT_API_PORT": str(api_port),
        "MINITWIT_WORKERS": str(workers),
        "MINITWIT_DB_TIMEOUT": "2",
        **(env or {}),
    }
    server_env = clean_env(**settings)
    log_path = log_dir / f"serve-{web_port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*minitwit_command(), "serve"],
            env=server_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        process,
        f"http://127.0.0.1:{web_port}",
        f"http://127.0.0.1:{api_port}",
        database_url,
        log_path,
    )

    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            statuses = {
                httpx.get(f"{base}/health", timeout=5).status_code
                for base in (server.web_url, server.api_url)
            }
        except httpx.HTTPError:
            return False
        return statuses == {200} if healthy else True

    try:
        wait_until(answering, STARTUP_GUARD, "the server to answer /health")
    except BaseException:
        server.stop()
        raise
    return server


# --- /proc -----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return stat[stat.rindex(")") + 2 :].split()


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def listening_inode(port: int) -> int | None:
    """The inode of the socket listening on TCP ``port`` (IPv4 or IPv6), if any."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "0A":  # 0A: LISTEN
                return int(fields[9])
    return None


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes
