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
workers, from /proc), on versus off.

On a shared two-core machine both move by tens of percent from one run to
the next (the same server's CPU per request too), which drowns a 5%
difference. So a last phase drives **both servers at once, side by side**,
for the same seconds: ``wrk`` on each, reading (``GET /msgs?no=20``) and
writing (``POST /msgs/<user>?latest=N`` as the registered users in turn),
32 connections each. Whatever the machine does meanwhile falls on both
alike, and the cheaper server gets through more requests in its share of
the cores: the loss is ``1 - on / off`` of that pair, and the extra CPU
``on / off - 1`` of their CPU time per request, each the median over rounds.

It prints numbers and never fails on them; the databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.simulator.scenario import read_scenario
from bench.common import (
    SIMULATOR_AUTH,
    Service,
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
    tweets_script,
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
    parser.add_argument(
        "--side-by-side-rounds", type=int, default=6, help="rounds of both servers at once (6)"
    )
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
                print("side by side:", flush=True)
                side_by_side_rows = side_by_side(servers, log_dir, registrations, args)
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
        median_on = statistics.median(results[workload, "on"])
        median_off = statistics.median(results[workload, "off"])
        cpu_on = statistics.median(cpu_per_request[workload, "on"])
        cpu_off = statistics.median(cpu_per_request[workload, "off"])
        summary.append(
            [workload, f"{median_on:,.0f}", f"{median_off:,.0f}",
             f"{1 - median_on / median_off:.1%}", f"{cpu_on * 1e6:,.0f} / {cpu_off * 1e6:,.0f}",
             f"{cpu_on / cpu_off - 1:+.1%}"]
        )  # fmt: skip
    headers = ["workload", "median on", "median off", "throughput loss"]
    print(table([*headers, "server CPU us/request on / off", "CPU per request"], summary))
    print()
    print("Both servers at once, the same seconds (wrk each, 32 connections):")
    print()
    print(table(SIDE_BY_SIDE_HEADERS, side_by_side_rows))
    return 0


SIDE_BY_SIDE_HEADERS = ["workload", "rounds", "on req/s", "off req/s", "throughput loss"]
SIDE_BY_SIDE_HEADERS += ["(min, max)", "server CPU us/request on / off", "CPU per request"]


def side_by_side(
    servers: dict[str, Service], log_dir: Path, registrations: Path, args: argparse.Namespace
) -> list[list[object]]:
    """Drive both servers at once for the same seconds; per workload, medians over rounds."""
    usernames = [action.username for action in read_scenario(registrations)]
    auth = (f"Authorization: {SIMULATOR_AUTH}",)
    workloads = {
        "reads (GET /msgs?no=20)": ("/msgs?no=20", None),
        "writes (POST /msgs/<user>)": ("/", tweets_script(log_dir, usernames)),
    }
    rows = []
    with ThreadPoolExecutor(max_workers=len(MODES)) as pool:
        for workload, (path, script) in workloads.items():
            rates: dict[str, list[float]] = {mode: [] for mode in MODES}
            cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(1, args.side_by_side_rounds + 1):
                cpu_before = {mode: cpu_seconds(servers[mode]) for mode in MODES}
                runs = {
                    mode: pool.submit(
                        wrk, servers[mode].url + path, args.duration, 32, 2, auth, script
                    )
                    for mode in MODES
                }
                results = {mode: run.result() for mode, run in runs.items()}
                for mode, result in results.items():
                    rates[mode].append(result.requests_per_s)
                    spent = cpu_seconds(servers[mode]) - cpu_before[mode]
                    cpu[mode].append(spent / max(result.requests, 1))
                errors = sum(result.errors for result in results.values())
                print(
                    f"{round_} | {workload} | on {rates['on'][-1]:,.0f} req/s, "
                    f"{cpu['on'][-1] * 1e6:,.0f} us/request | off {rates['off'][-1]:,.0f} req/s, "
                    f"{cpu['off'][-1] * 1e6:,.0f} us/request | errors {errors} | {load_average()}",
                    flush=True,
                )
            losses = [1 - on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
            extra_cpu = [on / off - 1 for on, off in zip(cpu["on"], cpu["off"], strict=True)]
            rows.append(
                [workload, len(losses), f"{statistics.median(rates['on']):,.0f}",
                 f"{statistics.median(rates['off']):,.0f}", f"{statistics.median(losses):.1%}",
                 f"({min(losses):.1%}, {max(losses):.1%})",
                 f"{statistics.median(cpu['on']) * 1e6:,.0f} / "
                 f"{statistics.median(cpu['off']) * 1e6:,.0f}",
                 f"{statistics.median(extra_cpu):+.1%}"]
            )  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
