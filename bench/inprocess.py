"""What observability costs the server itself: its CPU per request, on versus off,
measured in one process, request by request.

    .venv/bin/python -m bench.inprocess                  # 5 rounds of 1,000 requests each
    .venv/bin/python -m bench.inprocess --rounds 9 --requests 2000
    .venv/bin/python -m bench.inprocess --control        # both off: the method's noise floor
    .venv/bin/python -m bench.inprocess --compare metrics  # the metrics alone (access log in both)
    .venv/bin/python -m bench.inprocess --compare all      # the middleware and every metric
    .venv/bin/python -m bench.inprocess --compare quart    # app/request.py vs Quart's classes
    .venv/bin/python -m bench.inprocess --compare access   # the access line alone

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

``--compare metrics`` measures the Prometheus instrumentation alone (what the
monitoring issue budgets): both apps have the request middleware and write
the access line, and around each call of the "off" app every metric update
is taken out (``MetricsStripped``): the request tally, the domain counters
(``metrics.count``), the ``latest`` gauge and the ``timed_db`` wrappers of the
service functions.
The default comparison leaves those domain and database metrics (and the
domain events' log lines) in both apps; ``--compare all`` takes the metrics
out of the "off" app too: metrics and access logging on versus off, as the
load issue words its budget. ``--compare quart`` is no observability
comparison: both apps are instrumented, and the "off" one has Quart's own
request and connection classes instead of ``app.request``'s. ``--compare
access`` leaves both apps instrumented and disables the "off" app's access
logger around each of its calls (``AccessLineOff``): the access line alone.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
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

from prometheus_client.metrics import MetricWrapperBase
from quart.asgi import ASGIHTTPConnection
from quart.wrappers import Request as QuartRequest

from app.config import Settings
from app.factory import create_api_app
from app.observability import logs, metrics
from app.observability.middleware import RequestObserver, access_log
from app.services import follows, latest, messages, users
from bench.common import database_url, drop_database, fresh_database, machine_facts, table

COMPARISONS = {
    "observability": "the request middleware (HTTP metrics, access log) on vs off",
    "metrics": "every metric update on vs taken out, the access log on in both",
    "all": "the request middleware and every metric update on vs off",
    "access": "the access line written vs not, the middleware and metrics on in both",
    "quart": "the app's request and connection classes (app/request.py) vs Quart's own",
}
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
AUTHORIZATION = b"Basic " + base64.b64encode(b"simulator:super_safe!")
USERS = 50


class _NoMetric:
    """Takes any metric update and does nothing: the side of ``--compare metrics``
    (and ``all``) that has no instrumentation."""

    def labels(self, *_args: Any, **_kwargs: Any) -> _NoMetric:
        return self

    def inc(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    set = observe = add = inc


# The code object every ``timed_db`` wrapper shares: how they are told from other wrappers.
_TIMED_DB_CODE = metrics.timed_db("bench")(asyncio.sleep).__code__


class AccessLineOff:
    """No access line while inside (the access logger disabled, outside the measured
    time): the side of ``--compare access`` without it. The middleware still runs,
    and ``--control`` keeps the line."""

    def __init__(self, control: bool = False) -> None:
        self.disabled = control is False

    def __enter__(self) -> None:
        access_log.disabled = self.disabled

    def __exit__(self, *_exc: object) -> None:
        access_log.disabled = False


class MetricsStripped:
    """Every metric update of the API app taken out while inside, put back on leaving.

    The swaps are module and object attributes, set outside the measured CPU
    time. What stays is what the access line needs as well (the clock, the
    request id) and the in-progress count (an int attribute, counted up and
    down). With ``instrumented=True`` the same swaps put back what was there:
    the control run of this comparison.
    """

    def __init__(self, app: Any, instrumented: bool = False) -> None:
        self._swaps: list[tuple[object, str, object, object]] = []
        nothing = _NoMetric()
        for name, value in vars(metrics).items():
            if isinstance(value, MetricWrapperBase):
                self._swaps.append((metrics, name, value, nothing))
        self._swaps.append((metrics, "count", metrics.count, nothing.inc))
        for module in (follows, latest, messages, users):
            for name, value in vars(module).items():
                if getattr(value, "__code__", None) is _TIMED_DB_CODE:
                    self._swaps.append((module, name, value, value.__wrapped__))
        observer = app.asgi_app
        if isinstance(observer, RequestObserver):
            self._swaps.append((observer, "requests", observer.requests, nothing))
        if instrumented:
            self._swaps = [(owner, name, kept, kept) for owner, name, kept, _ in self._swaps]

    def __enter__(self) -> None:
        for owner, name, _, stripped in self._swaps:
            setattr(owner, name, stripped)

    def __exit__(self, *_exc: object) -> None:
        for owner, name, instrumented, _ in self._swaps:
            setattr(owner, name, instrumented)


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
    # The request middleware: on the "on" side; on the "off" side too unless the middleware
    # is what is compared. A control run gives the "on" side what the "off" side has.
    middleware = {"off": args.compare in ("metrics", "quart", "access")}
    middleware["on"] = middleware["off"] if args.control else True
    apps = {
        mode: create_api_app(dataclasses.replace(settings, observability=middleware[mode]))
        for mode in ("on", "off")
    }
    if args.compare == "quart" and not args.control:
        apps["off"].request_class = QuartRequest
        apps["off"].asgi_http_class = ASGIHTTPConnection
    # Around each call: what the app is compared without (nothing, by default).
    off: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.compare == "access":
        off = AccessLineOff(control=args.control)
    elif args.compare in ("metrics", "all"):
        off = MetricsStripped(apps["off"], instrumented=args.control)
    around = {"on": contextlib.nullcontext(), "off": off}
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
                    with around[mode]:
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
        description="The server's own CPU per request, observability on vs off (or --compare), "
        "in one process.",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="per app and round (1000)")
    parser.add_argument(
        "--compare",
        choices=tuple(COMPARISONS),
        default="observability",
        help="; ".join(f"{name}: {meaning}" for name, meaning in COMPARISONS.items()),
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="both apps alike (an A/A run): the difference the method shows for nothing",
    )
    args = parser.parse_args(argv)
    print(machine_facts())
    print(f"comparing: {COMPARISONS[args.compare]}")
    if args.control:
        both = {
            "metrics": "the middleware",
            "quart": "the app's classes",
            "access": "the access line",
        }.get(args.compare, "observability off")
        print(f'control run: both apps have {both} ("on" below is the second of them)')
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
