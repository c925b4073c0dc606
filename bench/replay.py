"""Scenario replay through the real server on PostgreSQL, against a hello-world ceiling.

    .venv/bin/python -m bench.replay                 # 26,000 actions, 200 users; 1 server worker
    .venv/bin/python -m bench.replay --server-workers 2
    .venv/bin/python -m bench.replay --actions 3000 --users 60   # a quick look

In one run, with the same generated scenario and the same client
(``minitwit simulate``, in its own process, on the same two cores):

1. **Sequential**, exactly like the simulator (one request at a time, a new
   connection each, 0.3 s timeout, ``?latest=``), against ``minitwit serve``
   on a fresh PostgreSQL database, then ``--verify``: per-command p50/p99.
2. **Concurrent**, ``--clients`` (16) requests in flight, on a fresh database
   again, then ``--verify``: actions/s and p99.
3. **Concurrent, users registered first**, as the course measured its
   reference API at 16 clients: on an emptied database the scenario's
   registrations with 2 clients (reported on their own), then everything
   else with ``--clients``: actions/s and p99 of that second phase.
4. All again against ``bench.hello`` (a hello-world Quart app served by
   uvicorn the same way, same worker count): the ceiling. The ratio says how
   close MiniTwit gets to it.

It prints numbers and never fails on them. The database
(``minitwit_bench_replay`` by default) is dropped at the end.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
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
    start_app,
    start_minitwit,
    table,
    wipe,
)

ROWS = ("all", "all but register", "register", "tweet", "follow", "unfollow")


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def latency_table(report: dict[str, Any]) -> str:
    rows = []
    for name in ROWS:
        row = report["latency_ms"].get(name)
        if row is not None:
            rows.append(
                [name, f"{row['n']:,}", *(_cell(row[k]) for k in ("p50", "p95", "p99", "max"))]
            )
    return table(["latency (ms)", "n", "p50", "p95", "p99", "max"], rows)


def outcome_line(report: dict[str, Any]) -> str:
    verification = report.get("verification")
    verified = ""
    if verification is not None:
        verified = "; state verified" if verification["ok"] else "; STATE DIFFERS"
        if verification.get("error"):
            verified = f"; state not read: {verification['error']}"
    groups = ", ".join(
        f"{g['count']} x {g['command']} {g['kind']} {g['status'] or ''}".rstrip()
        for g in report["unexpected_by_kind"]
    )
    return (
        f"{report['actions']:,} actions in {report['elapsed_s']:.1f} s = "
        f"{report['actions_per_s']:,.0f} actions/s; {report['unexpected']} unexpected"
        f"{' (' + groups + ')' if groups else ''}{verified}"
    )


def registered_first(
    base_url: str, registrations: Path, rest: Path, concurrent: tuple[str, ...]
) -> tuple[dict[str, Any], str]:
    """The registrations with 2 clients, then the rest with ``concurrent``; the rest's report."""
    command = simulate_command(base_url, str(registrations), "--workers", "2")
    print(f"\n$ {shlex.join(command)}")
    report = simulate(base_url, str(registrations), "--workers", "2")
    print(outcome_line(report))
    print(latency_table(report))
    load = load_average()
    print(f"$ {shlex.join(simulate_command(base_url, str(rest), *concurrent))}")
    report = simulate(base_url, str(rest), *concurrent)
    print(f"load average before: {load}; after: {load_average()}")
    print(outcome_line(report))
    print(latency_table(report))
    return report, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay",
        description="Sequential and concurrent scenario replay through minitwit serve on "
        "PostgreSQL, and the same against a hello-world Quart app.",
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--actions", type=int, default=26_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--server-workers", type=int, default=1, help="uvicorn workers (1)")
    parser.add_argument(
        "--database", default="minitwit_bench_replay", help="database name (dropped after)"
    )
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--skip-sequential", action="store_true", help="only the concurrent runs")
    args = parser.parse_args(argv)

    url = database_url(args.database)
    scenario = ("--generate", "--users", str(args.users), "--actions", str(args.actions),
                "--seed", str(args.seed))  # fmt: skip
    concurrent = ("--workers", str(args.clients))
    print(f"machine: {machine_facts()}")
    print(
        f"scenario: generated, {args.users:,} users, {args.actions:,} actions, seed {args.seed}; "
        f"server: {args.server_workers} uvicorn worker(s), PostgreSQL database {args.database}"
    )
    results: dict[str, tuple[dict[str, Any], str]] = {}

    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as tmp:
        log_dir = Path(tmp)
        registrations, rest = split_scenario(log_dir, args.users, args.actions, args.seed)
        run_async(fresh_database(url))
        try:
            with running(start_minitwit(url, log_dir, args.server_workers)) as server:
                runs = [] if args.skip_sequential else [("minitwit sequential", ())]
                runs.append((f"minitwit {args.clients} clients", concurrent))
                for index, (name, mode) in enumerate(runs):
                    if index:
                        run_async(wipe(url))
                    load = load_average()
                    command = simulate_command(server.url, *scenario, *mode, "--verify")
                    print(f"\n$ {shlex.join(command)}")
                    report = simulate(server.url, *scenario, *mode, "--verify")
                    results[name] = (report, load)
                    print(f"load average before: {load}; after: {load_average()}")
                    print(outcome_line(report))
                    print(latency_table(report))
                run_async(wipe(url))
                name = f"minitwit {args.clients} clients, registered first"
                results[name] = registered_first(server.url, registrations, rest, concurrent)
            with running(start_app("uvicorn", "hello", args.server_workers, log_dir)) as hello:
                runs = [] if args.skip_sequential else [("hello sequential", ())]
                runs.append((f"hello {args.clients} clients", concurrent))
                name = f"hello {args.clients} clients, registered first"
                results[name] = registered_first(hello.url, registrations, rest, concurrent)
                for name, mode in runs:
                    load = load_average()
                    print(f"\n$ {shlex.join(simulate_command(hello.url, *scenario, *mode))}")
                    report = simulate(hello.url, *scenario, *mode)
                    results[name] = (report, load)
                    print(f"load average before: {load}; after: {load_average()}")
                    print(outcome_line(report))
                    print(latency_table(report))
        finally:
            if not args.keep_database:
                run_async(drop_database(url))

    print("\nsummary (same client, same scenario, same server settings):")
    rows = []
    for name, (report, load) in results.items():
        other = report["latency_ms"].get("all but register") or report["latency_ms"]["all"]
        rows.append(
            [
                name,
                f"{report['actions_per_s']:,.0f}",
                _cell(other["p50"]),
                _cell(other["p99"]),
                _cell(report["latency_ms"]["all"]["p99"]),
                report["unexpected"],
                load,
            ]
        )
    headers = ["run", "actions/s", "p50 non-register", "p99 non-register", "p99 all"]
    print(table([*headers, "unexpected", "load avg before"], rows))
    for mode in (
        "sequential",
        f"{args.clients} clients",
        f"{args.clients} clients, registered first",
    ):
        app, ceiling = results.get(f"minitwit {mode}"), results.get(f"hello {mode}")
        if app and ceiling:
            ratio = app[0]["actions_per_s"] / ceiling[0]["actions_per_s"]
            print(f"{mode}: MiniTwit does {ratio:.0%} of the hello-world app's actions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
