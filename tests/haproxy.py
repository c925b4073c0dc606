"""Run the repository's HAProxy configuration on loopback, in front of live replicas.

``compose/haproxy/haproxy.cfg`` is the file the production Compose variant
mounts; it is run here unchanged, with the environment variables it documents
pointing its listeners at free loopback ports, its certificate at a
self-signed one made with ``openssl``, and its servers at ``minitwit serve``
processes instead of Docker's DNS. Used by tests/test_scaleout.py and
bench/scaleout.py. With ``plain=True`` it runs the same file in the Swarm
stack's plain-HTTP mode (``MINITWIT_LB_PLAIN_HTTP``).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests import postgres
from tests.conftest import ROOT, LiveServer

CONFIG = ROOT / "compose" / "haproxy" / "haproxy.cfg"
MAX_REPLICAS = 3  # the loopback server slots the configuration has


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )


def self_signed_pem(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and its key in one PEM, as HAProxy's ``crt`` wants."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=minitwit-test",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    pem = directory / "minitwit.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class LoadBalancer:
    process: subprocess.Popen[bytes]
    web_url: str  # https, through the "web" frontend (plain mode: http, the "http" one)
    api_url: str  # https, through the "api" frontend (plain mode: web_url + "/api")
    admin_url: str  # plain http: /healthz, /stats, /metrics
    cert: Path
    log_path: Path

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts exactly the self-signed certificate HAProxy serves."""
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(trust_env=False, verify=self.ssl_context(), **kwargs)  # type: ignore[arg-type]

    def stats(self) -> list[dict[str, str]]:
        """HAProxy's statistics: one row per frontend, backend and server."""
        response = httpx.get(f"{self.admin_url}/stats;csv", timeout=5, trust_env=False)
        response.raise_for_status()
        text = response.text.lstrip("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def servers(self, backend: str) -> dict[str, dict[str, str]]:
        return {
            row["svname"]: row
            for row in self.stats()
            if row["pxname"] == backend and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def backend(self, backend: str) -> dict[str, str]:
        return next(
            row for row in self.stats() if row["pxname"] == backend and row["svname"] == "BACKEND"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def environment(replicas: list[LiveServer], cert: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The variables haproxy.cfg reads, for loopback: free ports, the cert, the replicas."""
    if not 1 <= len(replicas) <= MAX_REPLICAS:
        raise ValueError(f"haproxy.cfg has {MAX_REPLICAS} loopback server slots")
    ports = {name: postgres.free_port() for name in ("http", "web", "api", "admin")}
    while len(set(ports.values())) < len(ports):
        ports = {name: postgres.free_port() for name in ports}
    env = {
        "MINITWIT_LB_HTTP_BIND": f"127.0.0.1:{ports['http']}",
        "MINITWIT_LB_WEB_BIND": f"127.0.0.1:{ports['web']}",
        "MINITWIT_LB_API_BIND": f"127.0.0.1:{ports['api']}",
        "MINITWIT_LB_ADMIN_BIND": f"127.0.0.1:{ports['admin']}",
        "MINITWIT_LB_CERT": str(cert),
    }
    for number, replica in enumerate(replicas, start=1):
        env[f"MINITWIT_LB_APP{number}_WEB"] = f"127.0.0.1:{_port(replica.web_url)}"
        env[f"MINITWIT_LB_APP{number}_API"] = f"127.0.0.1:{_port(replica.api_url)}"
    return env, ports


def process_environment(config_env: dict[str, str]) -> dict[str, str]:
    """HAProxy's environment: this one without any MINITWIT_LB_* of its own, then ``config_env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MINITWIT_LB_")}
    return {**clean, **config_env}


def start_haproxy(
    replicas: list[LiveServer], workdir: Path, timeout: float = 30, *, plain: bool = False
) -> LoadBalancer:
    """``haproxy -db -f compose/haproxy/haproxy.cfg``; returns once every replica is UP."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is not installed")
    cert = self_signed_pem(workdir)
    env, ports = environment(replicas, cert)
    if plain:
        env["MINITWIT_LB_PLAIN_HTTP"] = "1"
    log_path = workdir / "haproxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(CONFIG)],
            env=process_environment(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    web_url = f"http://127.0.0.1:{ports['http']}" if plain else f"https://127.0.0.1:{ports['web']}"
    balancer = LoadBalancer(
        process,
        web_url,
        f"{web_url}/api" if plain else f"https://127.0.0.1:{ports['api']}",
        f"http://127.0.0.1:{ports['admin']}",
        cert,
        log_path,
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}:\n{balancer.log()}")
        try:
            up = [
                row["status"] == "UP"
                for backend in ("web", "api")
                for row in balancer.servers(backend).values()
            ]
            if len(up) == 2 * len(replicas) and all(up):
                return balancer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            balancer.stop()
            raise RuntimeError(f"haproxy's servers did not all come UP:\n{balancer.log()}")
        time.sleep(0.1)


def config_lines(env: dict[str, str]) -> list[str]:
    """haproxy.cfg as HAProxy reads it with ``env``: .if/.else/.endif applied, comments
    dropped, quoted "${VAR-default}" references substituted, quotes removed."""
    lines: list[str] = []
    active = [True]
    for raw in CONFIG.read_text().splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line.startswith(".if "):
            defined = re.fullmatch(r"\.if defined\((\w+)\)", line)
            assert defined, f"unsupported condition: {line}"
            active.append(active[-1] and defined[1] in env)
            continue
        if line == ".else":
            active[-1] = not active[-1] and active[-2]
            continue
        if line == ".endif":
            active.pop()
            continue
        if not line or not active[-1]:
            continue
        line = re.sub(r"\$\{(\w+)(?:-([^}]*))?\}", lambda m: env.get(m[1]) or m[2] or "", line)
        lines.append(line.replace('"', ""))
    assert active == [True], "unbalanced .if/.endif"
    return lines
