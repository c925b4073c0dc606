"""What observability costs the server itself: its CPU per request, on versus off,
measured in one process, request by request.

    .venv/bin/python -m bench.inprocess                  # 5 rounds of 1,000 requests each
    .venv/bin/python -m bench.inprocess --rounds 9 --requests 2000
    .venv/bin/python -m bench.inprocess --control        # both off: the method's noise floor

``bench.overhead`` measures throughput with real servers and clients, which
on a shared two-core machine moves by tens of percent between runs, more
than the 5% it looks for. This one takes the client, the HTTP server and the
machine's drift out of the comparison: two API apps (``create_api_app``),
one with the request middleware and one with ``MINITWIT_OBSERVABILITY=off``,
in one process on one fresh PostgreSQL database, are called through their
ASGI interface in turn, request by request (on, off, off, on, ...), and the
process's CPU time is charged to the app that was called, including the end
of the event-loop turn where the access lines are written (to /dev/null, as
a file would take them). The requests are the simulator's mix: a tweet
(``POST /msgs/<user>?latest=N``), a user's messages, the public messages and
``GET /latest``, each as a registered user.

What it leaves out is the same for both apps (uvicorn's HTTP parsing and
socket work, about a third of a served request's CPU), so its percentages
are an upper bound of what the served request pays. It prints numbers and
never fails on them; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import dataclasses
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

# Multiprocess mode as served (a scrape-able file per process): set before the
# metrics are defined.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _METRICS_DIR = tempfile.mkdtemp(prefix="minitwit-bench-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR
    atexit.register(shutil.rmtree, _METRICS_DIR, ignore_errors=True)

from app.config import Settings
from app.factory import create_api_app
from app.observability import logs
from bench.common import database_url, drop_database, fresh_database, machine_facts, table

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
AUTHORIZATION = b"Basic " + base64.b64encode(b"simulator:super_safe!")
USERS = 50


def _scope(method: str, target: str, body: bytes) -> dict[str, Any]:
    path, _, query = target.partition("?")
    headers = [
        (b"host", b"127.0.0.1:5001"),
        (b"authorization", AUTHORIZATION),
        (b"user-agent", b"bench.inprocess"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5001),
    }


async def call(app: App, method: str, target: str, body: bytes = b"") -> int:
    """One request through the app's ASGI interface, as a server would make it; its status."""
    status = 0
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the client stays: Quart cancels this once it has answered
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(method, target, body), receive, send)
    return status


def requests() -> itertools.cycle[tuple[str, str, bytes]]:
    """The simulator's mix, as the registered users in turn."""
    mix: list[tuple[str, str, bytes]] = []
    for index in range(USERS):
        user = f"user{index}"
        mix += [
            ("POST", f"/msgs/{user}?latest={index}", b'{"content": "hello, world"}'),
            ("GET", f"/msgs/{user}?no=20", b""),
            ("GET", "/msgs?no=20", b""),
            ("GET", "/latest", b""),
        ]
    return itertools.cycle(mix)


async def measure(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    settings = dataclasses.replace(Settings.from_env(), database_url=url)
    sink = open(os.devnull, "w")  # noqa: SIM115 - for the whole run
    logs.configure(level="INFO", version="bench", environment="bench", stream=sink)
    apps = {
        mode: create_api_app(
            dataclasses.replace(settings, observability=mode == "on" and not args.control)
        )
        for mode in ("on", "off")
    }
    for app in apps.values():
        await app.startup()
    try:
        for index in range(USERS):
            body = f'{{"username": "user{index}", "email": "u{index}@x.org", "pwd": "p"}}'
            assert await call(apps["off"], "POST", "/register", body.encode()) == 204
        mix = requests()
        for _ in range(args.requests // 4):  # warm both up: caches, connections, layouts
            for app in apps.values():
                await call(app, *next(mix))
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        clock = time.process_time
        for round_ in range(1, args.rounds + 1):
            spent = {"on": 0.0, "off": 0.0}
            for index in range(args.requests):
                request = next(mix)
                order = ("on", "off") if index % 2 else ("off", "on")
                for mode in order:
                    start = clock()
                    status = await call(apps[mode], *request)
                    await asyncio.sleep(0)  # the turn ends: this app's access line is written
                    spent[mode] += clock() - start
                    if status >= 400:
                        raise SystemExit(f"{request[0]} {request[1]} answered {status}")
            for mode in spent:
                cpu[mode].append(spent[mode] / args.requests)
            print(
                f"{round_} | on {cpu['on'][-1] * 1e6:,.1f} us/request | "
                f"off {cpu['off'][-1] * 1e6:,.1f} us/request | "
                f"{cpu['on'][-1] / cpu['off'][-1] - 1:+.1%}",
                flush=True,
            )
        return cpu
    finally:
        for app in apps.values():
            await app.shutdown()
        sink.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inprocess",
        description="The server's own CPU per request, observability on vs off, in one process.",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="per app and round (1000)")
    parser.add_argument(
        "--control",
        action="store_true",
        help="both apps off (an A/A run): the difference the method shows for nothing",
    )
    args = parser.parse_args(argv)
    print(machine_facts())
    if args.control:
        print('control run: both apps have observability off ("on" below is the second of them)')
    url = database_url("minitwit_bench_inprocess")
    asyncio.run(fresh_database(url))
    try:
        cpu = asyncio.run(measure(args, url))
    finally:
        asyncio.run(drop_database(url))
    extra = [on / off - 1 for on, off in zip(cpu["on"], cpu["off"], strict=True)]
    on, off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    print()
    headers = ["rounds x requests", "CPU us/request on", "off", "difference"]
    headers += ["CPU per request", "(min, max)", "throughput loss if CPU-bound"]
    row = [f"{args.rounds} x {args.requests}", f"{on * 1e6:,.1f}", f"{off * 1e6:,.1f}"]
    row += [f"{(on - off) * 1e6:+,.1f} us", f"{statistics.median(extra):+.1%}"]
    row += [f"({min(extra):+.1%}, {max(extra):+.1%})", f"{1 - off / on:.1%}"]
    print(table(headers, [row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
