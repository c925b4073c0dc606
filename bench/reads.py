"""Latency of the read (and the two hot write) endpoints through the real server.

    .venv/bin/python -m bench.seed            # once: 10k users, 1M messages, 100k follows
    .venv/bin/python -m bench.reads           # the table
    .venv/bin/python -m bench.reads --explain # the SQL each endpoint runs, with its plan
    .venv/bin/python -m bench.reads --all-homes  # every user's home timeline, two ways

Starts ``minitwit serve`` (uvicorn, ``--workers`` processes, 1 by default)
against the database ``bench.seed`` made, signs in ``--sessions`` seeded users
through the login form (users with the median number of follows), then sends
each endpoint ``--requests`` sequential requests after ``--warmup`` unmeasured
ones, on one keep-alive connection, rotating the user among seeded ones.
Latency is measured at the client (send to last body byte), so it includes the
HTTP round trip and the client's own overhead on the same cores.

It prints numbers and never fails on them: exit status 0 whatever they are.
Messages and follows the write endpoints create are deleted at the end, so
the seeded database stays reusable.

``--explain`` does not start a server: it runs each request once through the
same Quart apps in-process, records every statement Tortoise sends (see
``bench.explain``) and prints EXPLAIN (ANALYZE, BUFFERS) for each.

``--all-homes`` times every seeded user's home timeline through the service
layer in-process (no HTTP), with the PostgreSQL statement and with the
portable ``IN (...)`` query, to show the tail across all users rather than
the typical ones.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import http.client
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import asyncpg

from bench.common import Service, start_minitwit
from bench.explain import capture_sql, explain
from bench.seed import BENCH_PASSWORD, DEFAULT_URL

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = ("simulator", "super_safe!")
SESSION_COOKIE = "minitwit_session"


@dataclass(frozen=True)
class Subjects:
    """Who the requests are about, chosen from the seeded data."""

    home_users: list[str]  # signed in; each follows the median number of users
    median_follows: int
    page_users: list[str]  # a uniform sample: whose page, messages and follows are read
    follow_pairs: list[tuple[str, str]]  # (who, whom) not yet following: follow, then unfollow
    max_message_id: int
    max_follower_id: int


async def choose_subjects(url: str, sessions: int, sample: int) -> Subjects:
    conn = await asyncpg.connect(url)
    try:
        median = await conn.fetchval(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n) "
            "FROM (SELECT count(*) AS n FROM follower GROUP BY who_id) AS counts"
        )
        if median is None:
            raise SystemExit(f"{url} has no follows: run python -m bench.seed first")
        # md5(id) orders deterministically but unrelated to id or popularity.
        home = await conn.fetch(
            'SELECT u.username FROM "user" u JOIN follower f ON f.who_id = u.id '
            "GROUP BY u.id HAVING count(*) = $1 ORDER BY md5(u.id::text) LIMIT $2",
            median,
            sessions,
        )
        page = await conn.fetch(
            "SELECT username FROM \"user\" ORDER BY md5(id::text || 'page') LIMIT $1", sample
        )
        pairs = await conn.fetch(
            "SELECT a.username, b.username FROM "
            "(SELECT id, username, row_number() OVER (ORDER BY md5(id::text || 'who')) AS n "
            ' FROM "user") a '
            "JOIN (SELECT id, username, row_number() OVER (ORDER BY md5(id::text || 'whom')) AS n "
            ' FROM "user") b ON a.n = b.n AND a.id <> b.id '
            "WHERE NOT EXISTS "
            "(SELECT 1 FROM follower f WHERE f.who_id = a.id AND f.whom_id = b.id) "
            "ORDER BY a.n LIMIT $1",
            sample,
        )
        max_message = await conn.fetchval("SELECT COALESCE(max(id), 0) FROM message")
        max_follower = await conn.fetchval("SELECT COALESCE(max(id), 0) FROM follower")
    finally:
        await conn.close()
    return Subjects(
        home_users=[row[0] for row in home],
        median_follows=int(median),
        page_users=[row[0] for row in page],
        follow_pairs=[(row[0], row[1]) for row in pairs],
        max_message_id=int(max_message),
        max_follower_id=int(max_follower),
    )


async def clean_up(url: str, subjects: Subjects) -> tuple[int, int]:
    """Delete what the write endpoints added; the seeded rows are untouched."""
    conn = await asyncpg.connect(url)
    try:
        messages = await conn.execute("DELETE FROM message WHERE id > $1", subjects.max_message_id)
        follows = await conn.execute("DELETE FROM follower WHERE id > $1", subjects.max_follower_id)
    finally:
        await conn.close()
    return int(messages.split()[-1]), int(follows.split()[-1])


async def database_facts(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT pg_size_pretty(pg_database_size(current_database())), "
            '(SELECT count(*) FROM "user"), (SELECT count(*) FROM message), '
            "(SELECT count(*) FROM follower), current_setting('server_version'), "
            "current_setting('shared_buffers')"
        )
    finally:
        await conn.close()
    assert row is not None
    return (
        f"database: {row[0]} ({row[1]:,} users, {row[2]:,} messages, {row[3]:,} follows), "
        f"PostgreSQL {row[4]}, shared_buffers {row[5]}"
    )


# --- the server ------------------------------------------------------------------------


def port_of(url: str | None) -> int:
    assert url is not None
    return int(url.rsplit(":", 1)[1])


def start_server(url: str, workers: int, log_dir: Path) -> Service:
    """``minitwit serve`` on free loopback ports, with the simulator's default credentials."""
    env = {"SIMULATOR_USERNAME": SIMULATOR[0], "SIMULATOR_PASSWORD": SIMULATOR[1]}
    return start_minitwit(url, log_dir, workers, env)


# --- the client ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    expect: int = 200


@dataclass(frozen=True)
class Endpoint:
    name: str
    port: int
    request: Callable[[int], Request]  # the i-th request


@dataclass(frozen=True)
class Result:
    name: str
    latencies_ms: list[float]
    elapsed_s: float
    errors: int

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def send(conn: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
    conn.request(request.method, request.path, body=request.body, headers=dict(request.headers))
    response = conn.getresponse()
    return response.status, response.read()


def measure(endpoint: Endpoint, warmup: int, count: int) -> Result:
    conn = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=30)
    errors = 0
    try:
        for i in range(warmup):
            send(conn, endpoint.request(i))
        latencies: list[float] = []
        started = time.perf_counter()
        for i in range(warmup, warmup + count):
            request = endpoint.request(i)
            before = time.perf_counter()
            status, _ = send(conn, request)
            latencies.append((time.perf_counter() - before) * 1000)
            if status != request.expect:
                errors += 1
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return Result(endpoint.name, latencies, elapsed, errors)


def sign_in(web_port: int, username: str) -> str:
    """Log in through the form; the session cookie's ``name=value``."""
    conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=30)
    try:
        body = urlencode({"username": username, "password": BENCH_PASSWORD}).encode()
        conn.request(
            "POST",
            "/login",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        response.read()
        cookie = _session_cookie(response.getheader("Set-Cookie"))
        if response.status != 302 or cookie is None:
            raise SystemExit(f"could not sign in {username!r}: HTTP {response.status}")
        # Read the home page once: it shows (and so consumes) the "logged in" flash.
        conn.request("GET", "/", headers={"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        return _session_cookie(response.getheader("Set-Cookie")) or cookie
    finally:
        conn.close()


def _session_cookie(header: str | None) -> str | None:
    if not header:
        return None
    for part in header.split(","):
        pair = part.strip().split(";", 1)[0]
        if pair.startswith(SESSION_COOKIE + "="):
            return pair
    return None


def endpoints(
    subjects: Subjects, cookies: list[str], web: int, api: int, latest: bool
) -> list[Endpoint]:
    auth = "Basic " + base64.b64encode(":".join(SIMULATOR).encode()).decode()
    json_headers = (("Authorization", auth), ("Content-Type", "application/json"))
    pages = [quote(name) for name in subjects.page_users]
    pairs = subjects.follow_pairs

    def page(i: int) -> str:
        return pages[i % len(pages)]

    def api_query(i: int, **params: int) -> str:
        if latest:
            params["latest"] = i
        return "?" + urlencode(params) if params else ""

    def follow(i: int) -> Request:
        who, whom = pairs[(i // 2) % len(pairs)]
        action = "follow" if i % 2 == 0 else "unfollow"
        return Request(
            "POST",
            f"/fllws/{quote(who)}{api_query(i)}",
            json.dumps({action: whom}).encode(),
            json_headers,
            204,
        )

    return [
        Endpoint("GET /public (web, anonymous)", web, lambda i: Request("GET", "/public")),
        Endpoint(
            "GET /<user> (web, signed in)",
            web,
            lambda i: Request(
                "GET", f"/{page(i)}", headers=(("Cookie", cookies[i % len(cookies)]),)
            ),
        ),
        Endpoint(
            "GET / (web, home timeline)",
            web,
            lambda i: Request("GET", "/", headers=(("Cookie", cookies[i % len(cookies)]),)),
        ),
        Endpoint(
            "GET /msgs?no=100",
            api,
            lambda i: Request("GET", f"/msgs{api_query(i, no=100)}", headers=json_headers[:1]),
        ),
        Endpoint(
            "GET /msgs/<user>",
            api,
            lambda i: Request("GET", f"/msgs/{page(i)}{api_query(i)}", headers=json_headers[:1]),
        ),
        Endpoint(
            "GET /fllws/<user>",
            api,
            lambda i: Request("GET", f"/fllws/{page(i)}{api_query(i)}", headers=json_headers[:1]),
        ),
        Endpoint(
            "POST /msgs/<user>",
            api,
            lambda i: Request(
                "POST",
                f"/msgs/{page(i)}{api_query(i)}",
                json.dumps({"content": f"bench message {i}"}).encode(),
                json_headers,
                204,
            ),
        ),
        Endpoint("POST /fllws/<user> (follow/unfollow)", api, follow),
    ]


def print_table(results: list[Result]) -> None:
    header = f"{'endpoint':<38} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>7}"
    print(header + f" {'errors':>6}")
    print("-" * (len(header) + 7))
    for r in results:
        n = len(r.latencies_ms)
        print(
            f"{r.name:<38} {n:>6} {r.percentile(0.5):>8.2f} {r.percentile(0.99):>8.2f} "
            f"{max(r.latencies_ms):>8.2f} {n / r.elapsed_s:>7.0f} {r.errors:>6}"
        )


def machine_facts() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, load average {load}"
    )


def run(args: argparse.Namespace) -> int:
    url = args.database_url
    subjects = asyncio.run(choose_subjects(url, args.sessions, args.sample))
    if not subjects.home_users or not subjects.follow_pairs:
        raise SystemExit(f"{url} does not look seeded: run python -m bench.seed first")
    print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(machine_facts())
    print(asyncio.run(database_facts(url)))
    print(
        f"server: minitwit serve, {args.workers} worker(s); client: one keep-alive "
        f"connection, sequential, {args.warmup} warm-up + {args.requests} measured requests "
        f"per endpoint; {len(subjects.home_users)} signed-in users with the median "
        f"{subjects.median_follows} follows; {len(subjects.page_users)} users rotated for "
        f"per-user requests{'; ?latest= on API requests' if args.latest else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="minitwit-bench-") as log_dir:
        server = start_server(url, args.workers, Path(log_dir))
        try:
            cookies = [sign_in(port_of(server.web_url), name) for name in subjects.home_users]
            results = []
            for endpoint in endpoints(
                subjects, cookies, port_of(server.web_url), port_of(server.url), args.latest
            ):
                if args.only and not any(word in endpoint.name for word in args.only):
                    continue
                results.append(measure(endpoint, args.warmup, args.requests))
        finally:
            server.stop()
            removed = asyncio.run(clean_up(url, subjects))
    print()
    print_table(results)
    print()
    print(machine_facts().replace("machine", "after", 1))
    print(f"cleaned up: {removed[0]} posted messages and {removed[1]} follows deleted")
    return 0


# --- --explain ---------------------------------------------------------------------------


async def run_explain(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.factory import create_api_app, create_web_app

    url = args.database_url
    subjects = await choose_subjects(url, 1, 1)
    user, page = subjects.home_users[0], quote(subjects.page_users[0])
    who, whom = subjects.follow_pairs[0]
    settings = Settings(database_url=url, db_timeout=10.0)
    web, api = create_web_app(settings), create_api_app(settings)
    auth = {"Authorization": "Basic " + base64.b64encode(":".join(SIMULATOR).encode()).decode()}
    captured: list[tuple[str, int, list]] = []
    async with web.test_app() as web_app, api.test_app() as api_app:
        web_client, api_client = web_app.test_client(), api_app.test_client()
        response = await web_client.post(
            "/login", form={"username": user, "password": BENCH_PASSWORD}
        )
        assert response.status_code == 302, response.status_code
        await web_client.get("/")  # consume the "logged in" flash
        requests = [
            ("GET /public (web, anonymous)", lambda: web_app.test_client().get("/public")),
            (f"GET /{page} (web, signed in as {user})", lambda: web_client.get(f"/{page}")),
            (f"GET / (web, home timeline of {user})", lambda: web_client.get("/")),
            ("GET /msgs?no=100", lambda: api_client.get("/msgs?no=100", headers=auth)),
            (f"GET /msgs/{page}", lambda: api_client.get(f"/msgs/{page}", headers=auth)),
            (f"GET /fllws/{page}", lambda: api_client.get(f"/fllws/{page}", headers=auth)),
            (
                f"POST /msgs/{page}",
                lambda: api_client.post(f"/msgs/{page}", json={"content": "x"}, headers=auth),
            ),
            (
                f"POST /fllws/{quote(who)} follow {whom!r}",
                lambda: api_client.post(
                    f"/fllws/{quote(who)}", json={"follow": whom}, headers=auth
                ),
            ),
        ]
        for name, call in requests:
            with capture_sql() as statements:
                response = await call()
            captured.append((name, response.status_code, list(statements)))
    conn = await asyncpg.connect(url)
    try:
        for name, status, statements in captured:
            print(f"=== {name}: HTTP {status}, {len(statements)} statements")
            for number, statement in enumerate(statements, start=1):
                print(f"--- {number}: {statement.sql.strip()}")
                if statement.values:
                    print(f"    values: {list(statement.values)!r}"[:300])
                for line in await explain(conn, statement):
                    print("    " + line)
            print()
    finally:
        await conn.close()
        await clean_up(url, subjects)
    return 0


# --- --all-homes ------------------------------------------------------------------------


async def run_all_homes(args: argparse.Namespace) -> int:
    """Every user's home timeline (page 1) through the service layer, in-process, for
    both implementations: where the tail is, not just the typical user."""
    from app import db
    from app.config import Settings
    from app.services import messages

    url = args.database_url
    conn = await asyncpg.connect(url)
    try:
        follows = dict(
            await conn.fetch(
                'SELECT u.id, count(f.id) FROM "user" u '
                "LEFT JOIN follower f ON f.who_id = u.id GROUP BY u.id ORDER BY u.id"
            )
        )
    finally:
        await conn.close()
    print(f"{machine_facts()}\n{await database_facts(url)}")
    print(f"home timeline, page 1, each of {len(follows):,} users once, one connection:")
    await db.connect(Settings(database_url=url, db_timeout=10.0, db_pool_size=1))
    try:
        for name, home in (
            ("newest per author (PostgreSQL)", messages.home_newest_per_author),
            ("author_id IN (...) (portable)", messages.home_any_author),
        ):
            timings = []
            for user_id, count in follows.items():
                started = time.perf_counter()
                await home(user_id, 31)
                timings.append(((time.perf_counter() - started) * 1000, user_id, count))
            result = Result(name, [t[0] for t in timings], 0.0, 0)
            slowest = ", ".join(f"{ms:.1f} ms (follows {n})" for ms, _, n in sorted(timings)[-3:])
            print(
                f"  {name:<32} p50 {result.percentile(0.5):6.2f}  p99 "
                f"{result.percentile(0.99):6.2f}  p99.9 {result.percentile(0.999):6.2f}  "
                f"max {max(result.latencies_ms):6.2f} ms; slowest: {slowest}"
            )
    finally:
        await db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reads",
        description="p50/p99 latency of MiniTwit's read endpoints through the real server.",
    )
    parser.add_argument("--database-url", default=DEFAULT_URL, help="default %(default)s")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    parser.add_argument("--requests", type=int, default=2000, help="measured, per endpoint")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured, per endpoint")
    parser.add_argument("--sessions", type=int, default=20, help="signed-in web users")
    parser.add_argument("--sample", type=int, default=500, help="users rotated through")
    parser.add_argument("--latest", action="store_true", help="send ?latest= like the simulator")
    parser.add_argument(
        "--only", nargs="*", help="measure only endpoints whose name contains one of these"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print EXPLAIN (ANALYZE, BUFFERS) of every statement each endpoint runs",
    )
    parser.add_argument(
        "--all-homes",
        action="store_true",
        help="time every user's home timeline in-process, both implementations",
    )
    args = parser.parse_args(argv)
    if args.explain:
        return asyncio.run(run_explain(args))
    if args.all_homes:
        return asyncio.run(run_all_homes(args))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
