"""What observability costs: HTTP metrics and access logging on versus off, in one run.

    .venv/bin/python -m bench.overhead              # 4 rounds of each workload
    .venv/bin/python -m bench.overhead --rounds 8 --duration 10

Two ``minitwit serve`` processes run side by side, each on its own fresh
PostgreSQL database: one as deployed, one with ``MINITWIT_OBSERVABILITY=off``
(the request middleware is not installed: no ``minitwit_http_*`` metrics and
no access events; the domain events and database metrics remain). Their
stdout (one JSON line per event) goes to a file, as a container's does.

Each round drives both, in alternating order (on/off, then off/on, ...) so
drift on the machine falls on both alike:

- **writes**: ``minitwit simulate`` on an emptied database: the generated
  scenario's registrations first (2 clients, not measured: password hashing
  is the same work either way and would drown the difference), then its
  tweets, follows and unfollows with 16 concurrent clients and a 10 s
  timeout, so both sides do the same work: actions/s;
- **reads**: ``wrk -t2 -c32`` on ``GET /msgs?no=20`` (keep-alive): req/s.

Two figures per workload: the throughput loss, ``1 - median(on) /
median(off)``, and the server's CPU time per request (its process and
workers, from /proc), on versus off. On a shared two-core machine throughput
moves by tens of percent from run to run; the CPU per request is the steadier
measure of what the instrumentation costs. It prints numbers and never fails
on them; the databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import (
    SIMULATOR_AUTH,
    cpu_seconds,
    database_url,
    drop_database,
    fresh_database,
    load_average,
    machine_facts,
    run_async,
    running,
    simulate,
    simulate_command,
    split_scenario,
    start_minitwit,
    table,
    wipe,
    wrk,
    wrk_command,
)

MODES = ("on", "off")
REGISTERING = ("--workers", "2", "--timeout", "10")  # the untimed setup phase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead",
        description="Throughput with the request middleware (metrics + access log) on vs off.",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--actions", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--server-workers", type=int, default=1)
    args = parser.parse_args(argv)

    urls = {mode: database_url(f"minitwit_bench_obs_{mode}") for mode in MODES}
    # A generous timeout: a registration that outlasts the simulator's 0.3 s on a saturated
    # machine would make the actions that follow it 404s, cheaper work, so the two sides
    # would no longer do the same work.
    concurrent = ("--workers", str(args.clients), "--timeout", "10")
    auth = (f"Authorization: {SIMULATOR_AUTH}",)
    print(f"machine: {machine_facts()}")
    print(f"servers: minitwit serve x2, {args.server_workers} worker(s) each, PostgreSQL")
    print(
        f"writes: {args.users} users, {args.actions:,} actions (seed 0), registrations first, "
        f"then $ {shlex.join(simulate_command('http://127.0.0.1:PORT', 'REST', *concurrent))}"
    )
    reads = wrk_command("http://127.0.0.1:PORT/msgs?no=20", args.duration, 32, 2, auth)
    print(f"reads:  $ {shlex.join(reads)}")

    results: dict[tuple[str, str], list[float]] = {}
    cpu_per_request: dict[tuple[str, str], list[float]] = {}
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as tmp:
        log_dir = Path(tmp)
        registrations, rest = split_scenario(log_dir, args.users, args.actions, seed=0)
        for url in urls.values():
            run_async(fresh_database(url))
        try:
            env = {mode: {"MINITWIT_OBSERVABILITY": mode} for mode in MODES}
            with (
                running(start_minitwit(urls["on"], log_dir, args.server_workers, env["on"])) as on,
                running(
                    start_minitwit(urls["off"], log_dir, args.server_workers, env["off"])
                ) as off,
            ):
                servers = {"on": on, "off": off}
                for round_ in range(1, args.rounds + 1):
                    order = MODES if round_ % 2 else tuple(reversed(MODES))
                    for mode in order:
                        server = servers[mode]
                        run_async(wipe(urls[mode]))
                        simulate(
                            server.url, str(registrations), "--workers", "2", "--timeout", "10"
                        )
                        load, cpu_before = load_average(), cpu_seconds(server)
                        report = simulate(server.url, str(rest), *concurrent)
                        cpu = (cpu_seconds(server) - cpu_before) / report["actions"]
                        results.setdefault(("writes", mode), []).append(report["actions_per_s"])
                        cpu_per_request.setdefault(("writes", mode), []).append(cpu)
                        rows.append(
                            [round_, "writes (16 clients)", mode,
                             f"{report['actions_per_s']:,.0f} actions/s", f"{cpu * 1e6:,.0f}",
                             f"{report['latency_ms']['all']['p99']:.1f}",
                             report["unexpected"], load]
                        )  # fmt: skip
                        print(" | ".join(str(c) for c in rows[-1]), flush=True)
                    for mode in order:
                        load, cpu_before = load_average(), cpu_seconds(servers[mode])
                        result = wrk(f"{servers[mode].url}/msgs?no=20", args.duration, 32, 2, auth)
                        cpu = (cpu_seconds(servers[mode]) - cpu_before) / max(result.requests, 1)
                        results.setdefault(("reads", mode), []).append(result.requests_per_s)
                        cpu_per_request.setdefault(("reads", mode), []).append(cpu)
                        rows.append(
                            [round_, "reads (wrk)", mode, f"{result.requests_per_s:,.0f} req/s",
                             f"{cpu * 1e6:,.0f}", f"{result.p99_ms:.1f}", result.errors, load]
                        )  # fmt: skip
                        print(" | ".join(str(c) for c in rows[-1]), flush=True)
        finally:
            for url in urls.values():
                run_async(drop_database(url))

    print()
    headers = ["round", "workload", "observability", "throughput", "server CPU us/request"]
    headers += ["p99 ms", "unexpected"]
    print(table([*headers, "load avg before"], rows))
    print()
    summary = []
    for workload in ("writes", "reads"):
        on = statistics.median(results[workload, "on"])
        off = statistics.median(results[workload, "off"])
        cpu_on = statistics.median(cpu_per_request[workload, "on"])
        cpu_off = statistics.median(cpu_per_request[workload, "off"])
        summary.append(
            [workload, f"{on:,.0f}", f"{off:,.0f}", f"{1 - on / off:.1%}",
             f"{cpu_on * 1e6:,.0f} / {cpu_off * 1e6:,.0f}", f"{cpu_on / cpu_off - 1:+.1%}"]
        )  # fmt: skip
    headers = ["workload", "median on", "median off", "throughput loss"]
    print(table([*headers, "server CPU us/request on / off", "CPU per request"], summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
