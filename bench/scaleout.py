"""1 vs 3 replicas behind HAProxy: throughput and latency of a mixed API load.

    .venv/bin/python -m bench.scaleout                    # 1 and 3 replicas, 16 clients, 15 s each
    .venv/bin/python -m bench.scaleout --replicas 1,2,3 --clients 32 --duration 30

For each replica count: a fresh PostgreSQL database (created on the server
tests/postgres.py finds: ``MINITWIT_TEST_POSTGRES_URL``, 127.0.0.1:5432, or a
throwaway cluster; dropped afterwards), that many ``minitwit serve``
processes (one uvicorn worker each, production timeouts), and HAProxy running
``compose/haproxy/haproxy.cfg`` in its loopback mode with TLS (tests/haproxy.py).
``--users`` users are registered, then ``--clients`` concurrent clients (asyncio
+ httpx, one keep-alive TLS connection each) send a mixed load for
``--duration`` seconds through HAProxy's API frontend:

    35% GET /msgs?no=20       20% GET /msgs/<user>?no=20   10% GET /fllws/<user>
    25% POST /msgs/<user>      7% POST /fllws (follow)      3% POST /fllws (unfollow)

It prints requests per second, p50/p99 latency, errors, and how HAProxy spread
the requests over the replicas; plus one row for a single replica reached
directly (no HAProxy, no TLS), which is what the load balancer costs.

Everything runs on one machine: the load client, HAProxy, every replica and
PostgreSQL share its cores. On the 2-core development machine 3 replicas are
not faster than 1 (they compete for the same 2 cores, with the client and
the database); the point of the replicas there is availability, not speed.
The benchmark never fails on its numbers: exit status 0 whatever they are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.db import migrate
from app.simulator.replay import percentile
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings, start_server
from tests.haproxy import LoadBalancer, start_haproxy

REPLICA_ENV = {"MINITWIT_DB_TIMEOUT": "0.25", "MINITWIT_LOG_LEVEL": "WARNING"}
MIX = (
    ("public", 35),
    ("user_msgs", 20),
    ("follows", 10),
    ("tweet", 25),
    ("follow", 7),
    ("unfollow", 3),
)


@dataclass
class Run:
    label: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)
    elapsed: float = 0.0
    spread: dict[str, int] = field(default_factory=dict)

    def row(self) -> str:
        values = sorted(self.latencies)
        errors = sum(n for status, n in self.statuses.items() if status not in {200, 204})
        rate = len(values) / self.elapsed if self.elapsed else 0.0
        spread = " ".join(f"{k}={v}" for k, v in self.spread.items()) or "-"
        kinds = [f"{status}x{n}" for status, n in self.statuses.items() if status not in {200, 204}]
        if kinds:
            spread += f"   errors: {' '.join(kinds)}"
        return (
            f"{self.label:<34} {rate:>8.0f} {percentile(values, 0.5) * 1000:>8.1f} "
            f"{percentile(values, 0.99) * 1000:>8.1f} {errors:>7}   {spread}"
        )


async def one_request(
    client: httpx.AsyncClient, base: str, kind: str, names: list[str], rng: random.Random
) -> int | str:
    me, other = rng.sample(names, 2)
    if kind == "public":
        response = await client.get(f"{base}/msgs?no=20", headers=SIMULATOR_AUTH)
    elif kind == "user_msgs":
        response = await client.get(f"{base}/msgs/{me}?no=20", headers=SIMULATOR_AUTH)
    elif kind == "follows":
        response = await client.get(f"{base}/fllws/{me}", headers=SIMULATOR_AUTH)
    elif kind == "tweet":
        body = {"content": f"bench {rng.random():.6f}"}
        response = await client.post(f"{base}/msgs/{me}", json=body, headers=SIMULATOR_AUTH)
    else:
        response = await client.post(
            f"{base}/fllws/{me}", json={kind: other}, headers=SIMULATOR_AUTH
        )
    if response.status_code >= 500:  # who answered: the app or HAProxy (see haproxy.cfg)
        origin = "haproxy" if "replica" in response.text else "app"
        return f"{response.status_code}({origin})"
    return response.status_code


ClientFactory = Callable[[], httpx.AsyncClient]


async def load(
    base: str, factory: ClientFactory, names: list[str], clients: int, duration: float, label: str
) -> Run:
    """``clients`` workers, each on its own keep-alive connection, for ``duration`` seconds."""
    run = Run(label)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    deadline = time.monotonic() + duration

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with factory() as client:
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                started = time.perf_counter()
                try:
                    status: int | str = await one_request(client, base, kind, names, rng)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                run.latencies.append(time.perf_counter() - started)
                run.statuses[status] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(seed) for seed in range(clients)))
    run.elapsed = time.monotonic() - started
    return run


async def register(base: str, client: httpx.AsyncClient, count: int) -> list[str]:
    names = [f"bench user {i}" for i in range(count)]
    for name in names:
        body = {"username": name, "email": f"u{name[-3:]}@x.dk", "pwd": "pw"}
        retried = False
        for _ in range(10):  # setup, not measured: a 503 on a busy machine is retried
            response = await client.post(f"{base}/register", json=body)
            if response.status_code != 503:
                break
            retried = True
            await asyncio.sleep(0.2)
        # After a 503 the registration may have happened all the same: "taken" is fine then.
        if not (response.status_code == 204 or (retried and response.status_code == 400)):
            response.raise_for_status()
    return names


@contextmanager
def database(admin: str) -> Iterator[str]:
    url = asyncio.run(postgres.create_database(admin))
    try:
        asyncio.run(migrate(make_settings(url), progress=lambda _: None))
        yield url
    finally:
        asyncio.run(postgres.drop_database(admin, url))


def measure(
    admin: str, replicas: int, args: argparse.Namespace, workdir: Path, direct: bool
) -> Run:
    with database(admin) as url:
        servers: list[LiveServer] = []
        balancer: LoadBalancer | None = None
        try:
            for _ in range(replicas):
                servers.append(start_server(url, workdir, env=REPLICA_ENV))
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            if direct:
                base = servers[0].api_url

                def factory() -> httpx.AsyncClient:
                    return httpx.AsyncClient(trust_env=False, timeout=10, limits=limits)

                label = f"{replicas} replica, direct (no HAProxy)"
            else:
                balancer = start_haproxy(servers, workdir)
                base = balancer.api_url
                lb = balancer

                def factory() -> httpx.AsyncClient:
                    return lb.client(timeout=10, limits=limits)

                label = f"{replicas} replica{'s' if replicas > 1 else ''} behind HAProxy (TLS)"

            async def go() -> Run:
                async with factory() as client:
                    names = await register(base, client, args.users)
                warm_up = max(2.0, args.duration / 5)  # not reported
                await load(base, factory, names, args.clients, warm_up, "warm-up")
                return await load(base, factory, names, args.clients, args.duration, label)

            run = asyncio.run(go())
            if balancer is not None:
                run.spread = {
                    name: int(row["stot"]) for name, row in balancer.servers("api").items()
                }
            return run
        finally:
            if balancer is not None:
                balancer.stop()
            for server in servers:
                server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaleout", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--replicas", default="1,3", help="comma-separated replica counts (default 1,3)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run (default 15)")
    parser.add_argument("--users", type=int, default=50, help="users registered first (default 50)")
    parser.add_argument("--no-direct", action="store_true", help="skip the direct 1-replica row")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]

    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.clients} clients, "
        f"{args.duration:.0f} s per run, {args.users} users; client, HAProxy, replicas "
        "and PostgreSQL share the machine"
    )
    header = f"{'setup':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(f"{header}   requests per replica")
    with postgres.admin_url() as admin, tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        if admin is None:
            raise SystemExit("no PostgreSQL: see tests/postgres.py")
        workdir = Path(tmp)
        if not args.no_direct:
            print(measure(admin, 1, args, workdir, direct=True).row(), flush=True)
        for count in counts:
            print(measure(admin, count, args, workdir, direct=False).row(), flush=True)
    print(f"# load average afterwards: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
