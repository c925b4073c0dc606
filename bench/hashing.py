"""A burst of registrations (password hashing) against a steady stream of other requests.

    .venv/bin/python -m bench.hashing                       # MINITWIT_HASH_CONCURRENCY 1 and 2
    .venv/bin/python -m bench.hashing --hash-concurrency 2 --burst 50 --rate 200

``minitwit serve`` (1 worker) on a fresh PostgreSQL database. A client sends
``GET /latest`` and ``GET /msgs?no=20`` alternately at a fixed rate (open
loop: requests go out on schedule whether or not earlier ones answered, so a
stall shows up as latency instead of silently lowering the rate), each on a
new connection like the simulator. After ``--before`` seconds, ``--burst``
registrations are sent at the same instant. The other requests' latency is
reported before the burst and while it lasts (from its first request to its
last answer), per ``MINITWIT_HASH_CONCURRENCY`` setting.

Passwords are argon2id at OWASP's minimum (m=19 MiB, t=2, p=1), hashed in a
thread pool of ``MINITWIT_HASH_CONCURRENCY`` threads (argon2-cffi releases
the GIL), so the event loop keeps serving while hashes run; one more
registration than that is admitted at a time (``passwords.admitted``), so
the burst's queries do not all run at once either. It prints numbers and
never fails on them; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.passwords import _hasher, hash_password_sync
from app.simulator.replay import SIMULATOR_CREDENTIALS, LatencySummary, build_request
from app.simulator.scenario import Action
from app.simulator.transport import Client, Target, TransportError
from bench.common import (
    SIMULATOR_AUTH,
    database_url,
    drop_database,
    fresh_database,
    load_average,
    machine_facts,
    run_async,
    running,
    start_minitwit,
    table,
)

SIMULATOR_TIMEOUT = 0.3


@dataclass(frozen=True)
class Sample:
    sent: float  # perf_counter
    latency: float  # seconds; the timeout when it failed
    ok: bool


async def _one(client: Client, payload: bytes, timeout: float, expect: int) -> Sample:
    sent = time.perf_counter()
    try:
        response = await client.exchange(payload, timeout)
        ok = response.status == expect
    except TransportError:
        ok = False
    return Sample(sent, time.perf_counter() - sent, ok)


async def experiment(
    base_url: str, rate: float, before: float, burst: int, after: float
) -> tuple[list[Sample], list[Sample], float, float]:
    """(steady samples, registration samples, burst start, burst end)."""
    client = Client(Target.parse(base_url))
    reads = [
        client.target.payload("GET", "/latest", {}),
        client.target.payload("GET", "/msgs?no=20", {"Authorization": SIMULATOR_AUTH}),
    ]
    nonce = uuid.uuid4().hex[:8]
    registrations = []  # the simulator's own registration requests
    for i in range(1, burst + 1):
        action = Action.register(i, f"burst {nonce} {i}", f"b{i}@example.com", f'pw"\\{i}')
        r = build_request(action, SIMULATOR_CREDENTIALS)
        registrations.append(client.target.payload(r.method, r.path, r.headers, r.body))
    steady: list[asyncio.Task[Sample]] = []
    interval = 1.0 / rate
    started = time.perf_counter()
    burst_task: asyncio.Future[list[Sample]] | None = None
    burst_start = 0.0
    warmup = 1.0
    end = started + warmup + before + after + 60  # upper bound; the burst ends it sooner
    index = 0
    next_send = started
    while time.perf_counter() < end:
        now = time.perf_counter()
        if burst_task is None and now >= started + warmup + before:
            burst_start = now
            burst_task = asyncio.gather(*(_one(client, p, 60.0, 204) for p in registrations))
        if burst_task is not None and burst_task.done() and end > now + after:
            end = now + after
        steady.append(asyncio.ensure_future(_one(client, reads[index % 2], 5.0, 200)))
        index += 1
        next_send += interval
        await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
    assert burst_task is not None
    registered = await burst_task
    burst_end = max(s.sent + s.latency for s in registered)
    samples = [s for s in await asyncio.gather(*steady) if s.sent >= started + warmup]
    return samples, registered, burst_start, burst_end


def summary_row(name: str, samples: list[Sample]) -> list[object]:
    stats = LatencySummary.of(s.latency for s in samples)
    slow = sum(s.latency > SIMULATOR_TIMEOUT for s in samples)
    failed = sum(not s.ok for s in samples)
    return [
        name,
        stats.count,
        f"{stats.p50 * 1000:.2f}",
        f"{stats.p99 * 1000:.2f}",
        f"{stats.max * 1000:.2f}",
        slow,
        failed,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hashing",
        description="Other requests' latency during a burst of simultaneous registrations.",
    )
    parser.add_argument("--burst", type=int, default=50, help="simultaneous registrations (50)")
    parser.add_argument("--rate", type=float, default=200, help="other requests per second (200)")
    parser.add_argument("--before", type=float, default=5, help="seconds measured before (5)")
    parser.add_argument("--after", type=float, default=2, help="seconds after the burst (2)")
    parser.add_argument(
        "--hash-concurrency", type=int, nargs="+", default=[1, 2], help="settings to try (1 2)"
    )
    parser.add_argument("--database", default="minitwit_bench_hashing")
    args = parser.parse_args(argv)

    timings = []
    for _ in range(7):
        started = time.perf_counter()
        hash_password_sync("correct horse battery staple")
        timings.append(time.perf_counter() - started)
    print(f"machine: {machine_facts()}")
    print(
        f"argon2id: memory {_hasher.memory_cost} KiB, time cost {_hasher.time_cost}, "
        f"parallelism {_hasher.parallelism}; one hash here: "
        f"{statistics.median(timings) * 1000:.1f} ms (median of 7, in this process)"
    )
    url = database_url(args.database)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as tmp:
        log_dir = Path(tmp)
        try:
            for concurrency in args.hash_concurrency:
                run_async(fresh_database(url))
                env = {"MINITWIT_HASH_CONCURRENCY": str(concurrency)}
                with running(start_minitwit(url, log_dir, 1, env)) as server:
                    load = load_average()
                    samples, registered, start, end = asyncio.run(
                        experiment(server.url, args.rate, args.before, args.burst, args.after)
                    )
                before = [s for s in samples if s.sent < start]
                during = [s for s in samples if start <= s.sent <= end]
                label = f"MINITWIT_HASH_CONCURRENCY={concurrency}"
                reg = LatencySummary.of(s.latency for s in registered)
                print(
                    f"\n{label} (load average before {load}, after {load_average()}): "
                    f"{args.burst} registrations took {end - start:.2f} s "
                    f"({sum(s.ok for s in registered)} answered 204; each p50 "
                    f"{reg.p50 * 1000:.0f} ms, max {reg.max * 1000:.0f} ms)"
                )
                rows.append([label, *summary_row("before the burst", before), load])
                rows.append([label, *summary_row("during the burst", during), load])
                print(rows[-2], rows[-1], sep="\n", flush=True)
        finally:
            run_async(drop_database(url))
    print()
    print(
        f"other requests: GET /latest and GET /msgs?no=20 alternately, {args.rate:g}/s, "
        "each on a new connection"
    )
    headers = ["server setting", "window", "requests", "p50 ms", "p99 ms", "max ms"]
    print(table([*headers, "> 0.3 s", "failed", "load avg before"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
