"""Reads stay index scans with a bounded number of queries, on PostgreSQL at a realistic shape.

A behaviour test, not a timing test: it seeds its own PostgreSQL database
with the benchmark's generator (``bench.seed``; 2,000 users, 50,000 messages,
10,000 follows, skewed like real traffic), sends each read endpoint through
the real Quart apps, records every statement the service layer sends to the
database (``bench.explain.capture_sql``), and checks:

- how PostgreSQL runs each statement (EXPLAIN ANALYZE of the exact SQL and
  values): timelines are index range scans on the indexes built for them,
  never a sequential scan of ``message`` or ``follower``;
- how many statements a request takes: the same number for a user with no
  messages or follows as for the busiest one, whatever ``no`` asks for (no
  query per row shown).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from quart.typing import TestClientProtocol as Client

from app.db import migrate
from app.factory import create_api_app, create_web_app
from app.passwords import hash_password_sync
from app.services import messages
from bench.explain import Statement, capture_sql, explain_json, plan_nodes
from bench.seed import BENCH_PASSWORD, Shape, seed_tables
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, make_settings

pytestmark = pytest.mark.asyncio

SHAPE = Shape(users=2_000, messages=50_000, follows=10_000)
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
BIG_TABLES = {"message", "follower"}
# One author's messages, newest first: all of them, or only the unflagged (partial).
AUTHOR_INDEXES = {"message_author_idx", "message_author_unflagged_idx"}
# A page's worth of rows, not the table's: at most 4% of the 50,000 messages
# may be read (kept or filtered out) to answer any one timeline request.
MAX_MESSAGE_ROWS_READ = 2_000


@dataclass(frozen=True)
class Seeded:
    url: str
    indexes: dict[str, str]  # index name -> its table
    follower_index: str  # the unique (who_id, whom_id) index Tortoise named
    typical: str  # follows the median number of users
    heavy_follower: str  # follows the most users
    loner: str  # follows no one and wrote nothing
    prolific: str  # wrote the most messages
    middle: str  # a page position (``?before=``) halfway through the history


@pytest.fixture(scope="module")
async def seeded(pg_admin_url: str) -> AsyncIterator[Seeded]:
    url = await postgres.create_database(pg_admin_url)
    try:
        await migrate(make_settings(url), progress=lambda _: None)
        conn = await asyncpg.connect(url)
        try:
            pw_hash = hash_password_sync(BENCH_PASSWORD)
            await seed_tables(conn, SHAPE, pw_hash, progress=lambda _: None)
            # A user with nothing at all: the smallest case every count is compared with.
            await conn.execute(
                'INSERT INTO "user" (username, email, pw_hash) VALUES ($1, $2, $3)',
                "Nobody Yet",
                "nobody@example.com",
                pw_hash,
            )
            await conn.execute("VACUUM (ANALYZE)")
            indexes = await conn.fetch(
                "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'"
            )
            seeded = Seeded(
                url=url,
                indexes={row[0]: row[1] for row in indexes},
                follower_index=await conn.fetchval(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'follower' "
                    "AND indexdef LIKE 'CREATE UNIQUE INDEX%(who_id, whom_id)'"
                ),
                typical=await _user(conn, "follower", "who_id", "median"),
                heavy_follower=await _user(conn, "follower", "who_id", "max"),
                loner="Nobody Yet",
                prolific=await _user(conn, "message", "author_id", "max"),
                middle=".".join(
                    str(value)
                    for value in await conn.fetchrow(
                        "SELECT pub_date, id FROM message WHERE id = $1", SHAPE.messages // 2
                    )
                ),
            )
        finally:
            await conn.close()
        assert seeded.follower_index, "no unique (who_id, whom_id) index on follower"
        yield seeded
    finally:
        await postgres.drop_database(pg_admin_url, url)


async def _user(conn: asyncpg.Connection, table: str, column: str, which: str) -> str:
    """The username with the median or the largest row count in ``table`` by ``column``."""
    order = "abs(n - (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM c))"
    if which == "max":
        order = "n DESC"
    name = await conn.fetchval(
        f"WITH c AS (SELECT {column} AS id, count(*) AS n FROM {table} GROUP BY {column}) "
        f'SELECT u.username FROM c JOIN "user" u ON u.id = c.id ORDER BY {order}, c.id LIMIT 1'
    )
    return str(name)


@dataclass
class Clients:
    anonymous: Client
    api: Client
    signed_in: dict[str, Client]


@pytest.fixture
async def clients(seeded: Seeded) -> AsyncIterator[Clients]:
    settings = make_settings(seeded.url)
    web, api = create_web_app(settings), create_api_app(settings)
    async with web.test_app() as web_app, api.test_app() as api_app:
        signed_in = {}
        for name in (seeded.typical, seeded.heavy_follower, seeded.loner):
            client = web_app.test_client()
            response = await client.post(
                "/login", form={"username": name, "password": BENCH_PASSWORD}
            )
            assert response.status_code == 302, name
            await client.get("/")  # shows, and so consumes, the "logged in" flash
            signed_in[name] = client
        yield Clients(web_app.test_client(), api_app.test_client(), signed_in)


async def run(client: Client, path: str) -> list[Statement]:
    """GET ``path``; every statement it sent to the database."""
    headers = SIMULATOR_AUTH if not path.startswith("/web") else {}
    with capture_sql() as statements:
        response = await client.get(path.removeprefix("/web"), headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return list(statements)


async def plans(
    url: str, statements: list[Statement], generic: bool = False
) -> list[list[dict[str, Any]]]:
    """For each statement, the nodes of the plan PostgreSQL actually ran; ``generic``:
    the plan made without the values, as the server's prepared statements may get after
    five executions."""
    conn = await asyncpg.connect(url)
    try:
        if generic:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
        return [list(plan_nodes(await explain_json(conn, s))) for s in statements]
    finally:
        await conn.close()


def reading(statements: list[Statement], table: str) -> list[Statement]:
    """The statements that read ``table`` (FROM or JOIN it, quoted or not)."""
    pattern = re.compile(rf'\b(FROM|JOIN)\s+"?{table}"?(\s|$)', re.IGNORECASE)
    return [s for s in statements if pattern.search(s.sql)]


def index_scans(seeded: Seeded, nodes: list[dict[str, Any]], table: str) -> set[str]:
    """Names of the indexes the plan reads ``table`` through."""
    names = {str(n["Index Name"]) for n in nodes if n["Node Type"] in INDEX_SCANS}
    return {name for name in names if seeded.indexes.get(name) == table}


def rows_read(nodes: list[dict[str, Any]], table: str) -> int:
    """Rows the plan fetched from ``table`` itself, whether it kept or filtered them out
    (an index-only scan reads the table only for its heap fetches)."""
    total = 0
    for node in nodes:
        if node.get("Relation Name") != table:
            continue
        if node["Node Type"] == "Index Only Scan":
            total += node["Heap Fetches"]
            continue
        rows = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        total += (rows + node.get("Rows Removed by Index Recheck", 0)) * node["Actual Loops"]
    return total


def seq_scans(nodes: list[dict[str, Any]]) -> set[str]:
    return {str(n["Relation Name"]) for n in nodes if n["Node Type"] == "Seq Scan"}


async def test_public_timeline_scans_the_public_index_backwards(
    seeded: Seeded, clients: Clients
) -> None:
    for client, path in ((clients.anonymous, "/web/public"), (clients.api, "/msgs?no=100")):
        [timeline] = reading(await run(client, path), "message")
        [nodes] = await plans(seeded.url, [timeline])
        assert index_scans(seeded, nodes, "message") == {"message_public_idx"}, path
        assert not seq_scans(nodes) & BIG_TABLES, path
        # The index order is the page order: no sort, and about a page of rows read.
        assert not any(node["Node Type"] == "Sort" for node in nodes), path
        assert rows_read(nodes, "message") <= 2 * 100, path


async def test_user_timeline_reads_the_author_index(seeded: Seeded, clients: Clients) -> None:
    signed_in = clients.signed_in[seeded.typical]
    for author in (seeded.typical, seeded.loner, seeded.prolific):
        name = quote(author)
        for client, path in ((signed_in, f"/web/{name}"), (clients.api, f"/msgs/{name}?no=100")):
            [timeline] = reading(await run(client, path), "message")
            [nodes] = await plans(seeded.url, [timeline])
            # The page's (pub_date, id) come from an index alone, its rows by key.
            used = index_scans(seeded, nodes, "message") - {"message_pkey"}
            allowed = set(AUTHOR_INDEXES)
            if author == seeded.prolific:
                # Someone who wrote a tenth of all messages is found as fast by
                # walking everyone's newest messages (the heap is in that order)
                # as by their own index range; PostgreSQL may pick either.
                allowed.add("message_public_idx")
            assert len(used) == 1, (path, used)
            assert used <= allowed, (path, used)
            assert not seq_scans(nodes) & BIG_TABLES, path
            assert rows_read(nodes, "message") <= MAX_MESSAGE_ROWS_READ, path


async def test_a_prolific_authors_page_stays_a_page_in_a_generic_plan(
    seeded: Seeded, clients: Clients
) -> None:
    """A generic plan knows neither the author nor how much they wrote: the page of the
    most prolific author still reads a page of index entries, not all they wrote."""
    name = quote(seeded.prolific)
    signed_in = clients.signed_in[seeded.typical]
    for client, path in ((signed_in, f"/web/{name}"), (clients.api, f"/msgs/{name}?no=100")):
        [timeline] = reading(await run(client, path), "message")
        [nodes] = await plans(seeded.url, [timeline], generic=True)
        assert not seq_scans(nodes) & BIG_TABLES, path
        assert rows_read(nodes, "message") <= 2 * 100, path


async def test_home_timeline_reads_each_followed_authors_newest_from_an_index(
    seeded: Seeded, clients: Clients
) -> None:
    """One statement: follows by the unique index, each author's newest unflagged
    messages by an index-only scan, the table only for the page itself."""
    for user in (seeded.typical, seeded.heavy_follower, seeded.loner):
        for path in ("/web/", f"/web/?before={seeded.middle}"):  # first and an older page
            statements = await run(clients.signed_in[user], path)
            [timeline] = reading(statements, "message")
            [nodes] = await plans(seeded.url, [timeline])
            used = index_scans(seeded, nodes, "follower")
            assert used == {seeded.follower_index}, (user, path)
            assert "message_author_unflagged_idx" in index_scans(seeded, nodes, "message")
            assert not seq_scans(nodes) & BIG_TABLES, (user, path)
            # However many the followed wrote: the page's 31 rows and little else.
            assert rows_read(nodes, "message") <= 2 * 31, (user, path)


async def test_home_timeline_statement_agrees_with_the_portable_query(
    seeded: Seeded, clients: Clients
) -> None:
    """The PostgreSQL statement returns what the portable ``IN (...)`` query returns,
    page after page, including for someone who follows themself."""
    conn = await asyncpg.connect(seeded.url)
    try:
        ids = {
            name: await conn.fetchval('SELECT id FROM "user" WHERE username = $1', name)
            for name in (seeded.typical, seeded.heavy_follower, seeded.loner, seeded.prolific)
        }
        narcissist = ids[seeded.typical]
        await conn.execute("INSERT INTO follower (who_id, whom_id) VALUES ($1, $1)", narcissist)
        try:
            for name, user_id in ids.items():
                before: messages.Cursor | None = None
                for _ in range(3):
                    fast = await messages.home_newest_per_author(user_id, 31, before)
                    portable = await messages.home_any_author(user_id, 31, before)
                    assert fast == portable, (name, before)
                    if not fast:
                        break
                    before = messages.Cursor(fast[-1].pub_date, fast[-1].id)
                assert name == seeded.loner or before is not None, name
        finally:
            await conn.execute(
                "DELETE FROM follower WHERE who_id = $1 AND whom_id = $1", narcissist
            )
    finally:
        await conn.close()


async def test_follows_list_reads_the_follower_unique_index(
    seeded: Seeded, clients: Clients
) -> None:
    for user in (seeded.heavy_follower, seeded.typical, seeded.loner):
        [follows] = reading(await run(clients.api, f"/fllws/{quote(user)}?no=1000"), "follower")
        [nodes] = await plans(seeded.url, [follows])
        assert index_scans(seeded, nodes, "follower") == {seeded.follower_index}, user
        assert not seq_scans(nodes) & BIG_TABLES, user


async def test_read_endpoints_issue_a_bounded_number_of_queries(
    seeded: Seeded, clients: Clients
) -> None:
    """As many statements for the busiest user and the biggest page as for an empty one."""
    busy, empty = quote(seeded.prolific), quote(seeded.loner)
    typical = clients.signed_in[seeded.typical]
    # Each group: the same request shape, from the smallest case to the largest.
    groups: dict[str, list[tuple[Client, str]]] = {
        "public timeline": [(clients.anonymous, "/web/public")],
        "user page, signed in": [
            (typical, f"/web/{empty}"),
            (clients.signed_in[seeded.heavy_follower], f"/web/{busy}"),
        ],
        "user page, anonymous": [
            (clients.anonymous, f"/web/{empty}"),
            (clients.anonymous, f"/web/{busy}"),
        ],
        "home timeline": [
            (clients.signed_in[seeded.loner], "/web/"),
            (typical, "/web/"),
            (clients.signed_in[seeded.heavy_follower], "/web/"),
        ],
        "GET /msgs": [(clients.api, "/msgs?no=1"), (clients.api, "/msgs?no=1000")],
        "GET /msgs/<user>": [
            (clients.api, f"/msgs/{empty}?no=1"),
            (clients.api, f"/msgs/{busy}?no=1000"),
        ],
        "GET /fllws/<user>": [
            (clients.api, f"/fllws/{empty}?no=1"),
            (clients.api, f"/fllws/{quote(seeded.heavy_follower)}?no=1000"),
        ],
    }
    for group, requests in groups.items():
        counts = [len(await run(client, path)) for client, path in requests]
        assert len(set(counts)) == 1, (group, counts)
        assert counts[0] <= 4, (group, counts)


async def test_scenario_writes_are_one_statement_latest_included(
    seeded: Seeded, clients: Clients
) -> None:
    """A tweet, follow or unfollow is one round trip, even when it ends in a 404.

    The user lookups, the change and ``latest`` share one statement (CTEs),
    and each lookup is the username's unique index, never a scan of ``user``.
    """
    writer, other = quote(seeded.typical), seeded.loner
    requests = [
        (f"/msgs/{writer}?latest=901", {"content": "one round trip"}, 204),
        (f"/fllws/{writer}?latest=902", {"follow": other}, 204),
        (f"/fllws/{writer}?latest=903", {"unfollow": other}, 204),
        ("/msgs/No%20Such%20User?latest=904", {"content": "nobody"}, 404),
        (f"/fllws/{writer}?latest=905", {"follow": "No Such User"}, 404),
    ]
    for path, body, status in requests:
        with capture_sql() as statements:
            response = await clients.api.post(path, json=body, headers=SIMULATOR_AUTH)
        assert response.status_code == status, (path, await response.get_data())
        assert len(statements) == 1, (path, [s.sql for s in statements])
        [nodes] = await plans(seeded.url, list(statements))
        assert not seq_scans(nodes) & {"user", "message", "follower"}, path
        recorded = await (await clients.api.get("/latest")).get_json()
        assert recorded == {"latest": int(path.rsplit("=", 1)[1])}, path


async def test_scenario_reads_are_one_statement_latest_included(
    seeded: Seeded, clients: Clients
) -> None:
    """The simulator's reads with ``?latest=`` are one round trip each, a 404 included:
    the user lookup, the page and ``latest`` share one statement; ``GET /latest`` is one."""
    reader = quote(seeded.typical)
    requests = [
        ("/msgs?no=20&latest=911", 200),
        (f"/msgs/{reader}?no=20&latest=912", 200),
        (f"/fllws/{reader}?no=20&latest=913", 200),
        ("/msgs/No%20Such%20User?latest=914", 404),
        ("/fllws/No%20Such%20User?latest=915", 404),
    ]
    for path, status in requests:
        with capture_sql() as statements:
            response = await clients.api.get(path, headers=SIMULATOR_AUTH)
        assert response.status_code == status, (path, await response.get_data())
        assert len(statements) == 1, (path, [s.sql for s in statements])
        [nodes] = await plans(seeded.url, list(statements))
        assert not seq_scans(nodes) & {"user", "message", "follower"}, path
        with capture_sql() as statements:
            recorded = await (await clients.api.get("/latest")).get_json()
        assert len(statements) == 1
        assert recorded == {"latest": int(path.rsplit("=", 1)[1])}, path
