"""Which ASGI server: uvicorn, hypercorn and granian, for MiniTwit and for hello world.

    .venv/bin/pip install -e '.[bench]'      # hypercorn and granian (bench-only)
    .venv/bin/python -m bench.servers        # 1 and 2 workers, 10 s per wrk run
    .venv/bin/python -m bench.servers --duration 5 --workers 1

For each server and worker count, ``wrk -t2 -c32 --latency`` (keep-alive, the
load generator on the same two cores) drives:

- ``bench.hello`` (hello-world Quart): ``GET /latest``, answered without I/O;
- MiniTwit's API on PostgreSQL: ``GET /latest`` (one indexed read) and
  ``GET /msgs?no=20`` (the public timeline, authenticated), on a database a
  generated 2,000-action scenario was replayed into first.

MiniTwit on uvicorn is ``minitwit serve`` itself; on hypercorn and granian it
is the same ASGI factory (``app.asgi:create_asgi_app``) with the server's own
access log off, as ``minitwit serve`` has it. MiniTwit's requests go to
``/api/...`` on the web port on all three (granian's ASGI scope has no port to
route the API port by). Runs go server after server for
each case, so drift on the machine spreads over all three. It prints numbers
and never fails on them.
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
    database_url,
    drop_database,
    fresh_database,
    load_average,
    machine_facts,
    run_async,
    running,
    simulate,
    start_app,
    start_minitwit,
    table,
    wrk,
    wrk_command,
)

SERVERS = ("uvicorn", "hypercorn", "granian")
CASES = (  # (app, endpoint label, path, headers)
    ("hello", "GET /latest", "/latest", ()),
    ("minitwit", "GET /latest", "/latest", ()),
    ("minitwit", "GET /msgs?no=20", "/msgs?no=20", (f"Authorization: {SIMULATOR_AUTH}",)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers",
        description="uvicorn vs hypercorn vs granian, for MiniTwit's API and a hello-world app.",
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts (1 2)"
    )
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--database", default="minitwit_bench_servers")
    args = parser.parse_args(argv)

    url = database_url(args.database)
    print(f"machine: {machine_facts()}")
    example = wrk_command("http://127.0.0.1:PORT/latest", args.duration, args.connections, 2)
    print(f"each run: $ {shlex.join(example)}   (plus -H for the authenticated endpoint)")
    rows: list[list[object]] = []
    rates: dict[tuple[str, str, str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as tmp:
        log_dir = Path(tmp)
        run_async(fresh_database(url))
        try:
            with running(start_minitwit(url, log_dir)) as seeder:
                report = simulate(
                    seeder.url,
                    "--generate",
                    "--users",
                    "100",
                    "--actions",
                    "2000",
                    "--workers",
                    "8",
                )
                print(
                    f"database: {report['actions']:,} generated actions replayed "
                    f"({report['unexpected']} unexpected)"
                )
            for workers in args.workers:
                for app, endpoint, path, headers in CASES:
                    for server in args.servers:
                        service = start_app(server, app, workers, log_dir, db_url=url)
                        # MiniTwit through /api on its one (web) port on every server alike.
                        base = f"{service.web_url}/api" if service.web_url else service.url
                        with running(service):
                            wrk(base + path, 1, args.connections, 2, headers)  # warm up
                            load = load_average()
                            result = wrk(base + path, args.duration, args.connections, 2, headers)
                        rates[server, app, endpoint, workers] = result.requests_per_s
                        rows.append(
                            [
                                app,
                                endpoint,
                                workers,
                                server,
                                f"{result.requests_per_s:,.0f}",
                                f"{result.p50_ms:.2f}",
                                f"{result.p99_ms:.2f}",
                                result.errors,
                                load,
                            ]
                        )
                        print(" | ".join(str(c) for c in rows[-1]), flush=True)
        finally:
            run_async(drop_database(url))

    print()
    headers = ["app", "endpoint", "workers", "server", "req/s", "p50 ms", "p99 ms", "errors"]
    print(table([*headers, "load avg before"], rows))
    print("\nrelative to uvicorn (req/s):")
    for server in args.servers:
        if server == "uvicorn":
            continue
        ratios = [
            rate / rates["uvicorn", app, endpoint, workers]
            for (name, app, endpoint, workers), rate in rates.items()
            if name == server and ("uvicorn", app, endpoint, workers) in rates
        ]
        if ratios:
            print(
                f"  {server}: median {statistics.median(ratios):.0%} of uvicorn "
                f"(range {min(ratios):.0%} to {max(ratios):.0%} over {len(ratios)} cases)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
