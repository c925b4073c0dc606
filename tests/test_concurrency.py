"""Concurrent simulator requests against a real ``minitwit serve``, on both databases.

Replicas race in production; here many requests are in flight at once
against one server (``asyncio.gather`` over real sockets), and the rows they
leave are read with SQL. The unique constraints, not luck, must keep the data
right, and no interleaving may produce a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app import db
from app.services import latest
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings, start_server
from tests.db_state import fetch, follow_pairs, read_state

pytestmark = pytest.mark.slow

CONCURRENCY = 40
HANG_GUARD = 15.0


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=live.api_url, headers=SIMULATOR_AUTH, timeout=60, limits=limits
    ) as client:
        yield client


async def register(api: httpx.AsyncClient, *names: str) -> None:
    for name in names:
        response = await api.post(
            "/register", json={"username": name, "email": f"{name}@example.com", "pwd": "pw"}
        )
        assert response.status_code == 204, response.text


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def assert_no_server_errors(responses: list[httpx.Response]) -> None:
    errors = [(r.status_code, r.text) for r in responses if r.status_code >= 500]
    assert not errors, errors[:5]


async def test_identical_follows_leave_one_row(api: httpx.AsyncClient, live: LiveServer) -> None:
    await register(api, "alice", "bob")
    responses = await asyncio.gather(
        *(api.post(f"/fllws/alice?latest={i}", json={"follow": "bob"}) for i in range(CONCURRENCY))
    )
    assert statuses(responses) == {204: CONCURRENCY}
    assert all(response.content == b"" for response in responses)
    assert await follow_pairs(live.database_url) == [("alice", "bob")]
    follows = await api.get("/fllws/alice")
    assert follows.json() == {"follows": ["bob"]}
    # Every request recorded its `latest`; whichever landed last, it is one of them.
    assert (await read_state(live.database_url)).latest in range(CONCURRENCY)


async def test_racing_registrations_of_one_name_create_one_user(
    api: httpx.AsyncClient, live: LiveServer
) -> None:
    responses = await asyncio.gather(
        *(
            api.post(
                "/register",
                json={"username": "Roger Histand", "email": f"r{i}@example.com", "pwd": f"p{i}"},
            )
            for i in range(CONCURRENCY)
        )
    )
    assert statuses(responses) == {204: 1, 400: CONCURRENCY - 1}, statuses(responses)
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"status": 400, "error_msg": "The username is already taken"}
    users = await fetch(live.database_url, 'SELECT username, email FROM "user"')
    assert len(users) == 1
    assert users[0][0] == "Roger Histand"
    # The user that exists is the one whose request got the 204.
    winner = next(i for i, r in enumerate(responses) if r.status_code == 204)
    assert users[0][1] == f"r{winner}@example.com"


async def test_racing_registrations_of_different_names_all_succeed(
    api: httpx.AsyncClient, live: LiveServer
) -> None:
    names = [f"user {i} ✓" for i in range(CONCURRENCY)]
    responses = await asyncio.gather(
        *(
            api.post("/register", json={"username": name, "email": f"{i}@example.com", "pwd": "pw"})
            for i, name in enumerate(names)
        )
    )
    assert statuses(responses) == {204: CONCURRENCY}
    rows = await fetch(live.database_url, 'SELECT username FROM "user"')
    assert sorted(str(row[0]) for row in rows) == sorted(names)


async def test_concurrent_posts_all_land(api: httpx.AsyncClient, live: LiveServer) -> None:
    authors = ["alice", "bob", "carol"]
    await register(api, *authors)
    posts = [(authors[i % len(authors)], f"post {i} — «{i}» 🎉") for i in range(CONCURRENCY * 2)]
    responses = await asyncio.gather(
        *(api.post(f"/msgs/{author}", json={"content": text}) for author, text in posts)
    )
    assert statuses(responses) == {204: len(posts)}
    rows = await fetch(
        live.database_url,
        'SELECT u.username, m.text FROM message m JOIN "user" u ON u.id = m.author_id',
    )
    assert sorted((str(a), str(t)) for a, t in rows) == sorted(posts)
    listed = (await api.get("/msgs", params={"no": 1000})).json()
    assert sorted((m["user"], m["content"]) for m in listed) == sorted(posts)
    # Newest first, ties broken by insertion order: the listing is the id order reversed.
    ordered = await fetch(
        live.database_url, "SELECT text FROM message ORDER BY pub_date DESC, id DESC"
    )
    assert [m["content"] for m in listed] == [str(row[0]) for row in ordered]


async def test_mixed_follows_and_unfollows_never_fail(
    api: httpx.AsyncClient, live: LiveServer
) -> None:
    names = ["alice", "bob", "carol", "dave"]
    await register(api, *names)
    requests = []
    for i in range(CONCURRENCY * 2):
        who, whom = names[i % 2], names[2 + (i // 2) % 2]
        action = "follow" if (i // 4) % 2 == 0 else "unfollow"
        requests.append((who, action, whom))
    responses = await asyncio.gather(
        *(api.post(f"/fllws/{who}", json={action: whom}) for who, action, whom in requests)
    )
    assert_no_server_errors(responses)
    assert statuses(responses) == {204: len(requests)}
    pairs = await follow_pairs(live.database_url)
    assert len(pairs) == len(set(pairs)), "a pair is stored twice"
    assert set(pairs) <= {(who, whom) for who, _, whom in requests}
    # What the API lists is what the table holds.
    for who in names[:2]:
        listed = (await api.get(f"/fllws/{who}")).json()["follows"]
        assert sorted(listed) == sorted(whom for w, whom in pairs if w == who)
    # Settled afterwards, one last follow and unfollow win deterministically.
    assert (await api.post("/fllws/alice", json={"follow": "carol"})).status_code == 204
    assert (await api.post("/fllws/bob", json={"unfollow": "carol"})).status_code == 204
    pairs = await follow_pairs(live.database_url)
    assert ("alice", "carol") in pairs
    assert ("bob", "carol") not in pairs


async def test_unfollow_races_follow_of_the_same_pair(
    api: httpx.AsyncClient, live: LiveServer
) -> None:
    await register(api, "alice", "bob")
    actions = ["follow", "unfollow"] * CONCURRENCY
    responses = await asyncio.gather(
        *(api.post("/fllws/alice", json={action: "bob"}) for action in actions)
    )
    assert_no_server_errors(responses)
    assert statuses(responses) == {204: len(actions)}
    pairs = await follow_pairs(live.database_url)
    assert pairs in ([], [("alice", "bob")])


async def test_everything_at_once(api: httpx.AsyncClient, live: LiveServer) -> None:
    """Registrations, posts, follows, reads and bad requests interleaved: only expected answers."""
    await register(api, "alice", "bob")
    calls = []
    for i in range(CONCURRENCY):
        calls += [
            api.post("/register", json={"username": f"u{i}", "email": "e@x", "pwd": "p"}),
            api.post("/register", json={"username": "alice", "email": "e@x", "pwd": "p"}),
            api.post("/msgs/alice", json={"content": f"m{i}"}),
            api.post("/fllws/bob", json={"follow" if i % 2 else "unfollow": "alice"}),
            api.post("/msgs/alice", content=b"{not json"),
            api.get("/msgs", params={"no": 5}),
            api.get("/fllws/ghost"),
        ]
    responses = await asyncio.gather(*calls)
    assert_no_server_errors(responses)
    by_kind = [Counter[int]() for _ in range(7)]
    for index, response in enumerate(responses):
        by_kind[index % 7][response.status_code] += 1
    n = CONCURRENCY
    assert by_kind == [
        Counter({204: n}),
        Counter({400: n}),
        Counter({204: n}),
        Counter({204: n}),
        Counter({400: n}),
        Counter({200: n}),
        Counter({404: n}),
    ]
    state = await read_state(live.database_url)
    assert state.counts()["user"] == 2 + n
    assert state.counts()["message"] == n
    assert state.counts()["follower"] <= 1


@pytest.fixture(scope="module")
def two_workers(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """``minitwit serve`` with two worker processes: the races cross processes too."""
    server = start_server(database_url, tmp_path_factory.mktemp("workers"), workers=2)
    yield server
    server.stop()


async def test_races_across_worker_processes(two_workers: LiveServer, clean_db: str) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=two_workers.api_url, headers=SIMULATOR_AUTH, timeout=60, limits=limits
    ) as api:
        responses = await asyncio.gather(
            *(
                api.post("/register", json={"username": "dup", "email": f"{i}@x", "pwd": "p"})
                for i in range(CONCURRENCY)
            )
        )
        assert statuses(responses) == {204: 1, 400: CONCURRENCY - 1}
        await register(api, "other")
        responses = await asyncio.gather(
            *(api.post("/fllws/dup", json={"follow": "other"}) for _ in range(CONCURRENCY))
        )
        assert statuses(responses) == {204: CONCURRENCY}
    assert await follow_pairs(clean_db) == [("dup", "other")]
    assert len(await fetch(clean_db, 'SELECT id FROM "user" WHERE username = $1', "dup")) == 1


async def test_a_first_query_cancelled_midway_does_not_wedge_the_process(
    clean_db: str,
) -> None:
    """A client that gives up on a worker's very first request must not stop the worker.

    (Tortoise used to open the SQLite connection inside the first query, holding
    its connection lock; cancelled right then, the lock was never released and
    every later query of the process waited forever.) Cancelled at once, before
    anything else ran, the first query must leave the next one free to answer.
    """
    settings = make_settings(clean_db)
    await db.connect(settings)
    try:
        first = asyncio.ensure_future(latest.get())
        await asyncio.sleep(0)
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        # A guard against a hang, not a claim about speed.
        assert await asyncio.wait_for(latest.get(), HANG_GUARD) == -1
    finally:
        await db.close()
