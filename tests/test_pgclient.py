"""The PostgreSQL pool under saturation: bounded waits, served in arrival order.

On a real PostgreSQL, more requests than pooled connections: each takes a
connection, runs a quick statement and gives it back, and a new request
starts whenever one ends, a few event-loop steps in, as a busy server's do.
asyncpg's own queue lets such newcomers take a connection just handed to a
waiter, who then goes back to the end of the line (over a hundred later
requests served before one waiter, here); served in turn, none is.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import time

import asyncpg
import pytest

from app.pgclient import BoundedAcquirePool, create_pool

CLIENTS = 20
POOL_SIZE = 2
ACQUIRE_TIMEOUT = 0.2


async def _no_reset(_connection: object) -> None:
    """As the app's pool: nothing to reset on release (``app.db``)."""


async def _pool(url: str, acquire_timeout: float = ACQUIRE_TIMEOUT) -> BoundedAcquirePool:
    return await create_pool(
        url,
        acquire_timeout=acquire_timeout,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        reset=_no_reset,
    )


def most_overtaken(grants: list[int]) -> int:
    """The most requests that arrived later and got a connection earlier, for any one
    request (``grants``: the arrival numbers in the order connections were given)."""
    granted: list[int] = []
    most = 0
    for arrival in grants:
        most = max(most, len(granted) - bisect.bisect_right(granted, arrival))
        bisect.insort(granted, arrival)
    return most


async def most_overtaken_under_load(pool: BoundedAcquirePool, seconds: float = 1.5) -> int:
    """Keep ``CLIENTS`` requests in flight on ``pool`` for ``seconds``; ``most_overtaken``."""
    steps = random.Random(0)
    arrivals = 0
    grants: list[int] = []

    async def request() -> None:
        nonlocal arrivals
        for _ in range(steps.randint(0, 3)):  # the framework's steps before the query
            await asyncio.sleep(0)
        arrival, arrivals = arrivals, arrivals + 1
        async with pool.acquire(timeout=5.0) as connection:  # order is the point, not time
            grants.append(arrival)
            await connection.fetchval("SELECT 1")
        for _ in range(steps.randint(0, 3)):  # and after it
            await asyncio.sleep(0)

    until = time.monotonic() + seconds
    in_flight: set[asyncio.Task[None]] = set()

    def start_one() -> None:
        if time.monotonic() < until:
            task = asyncio.create_task(request())
            in_flight.add(task)
            task.add_done_callback(lambda done: (in_flight.discard(done), start_one()))

    for _ in range(CLIENTS):
        start_one()
    while in_flight:
        await asyncio.gather(*in_flight)
    assert len(grants) > 500
    return most_overtaken(grants)


async def test_waiting_requests_get_a_connection_in_the_order_they_asked(
    pg_admin_url: str,
) -> None:
    pool = await _pool(pg_admin_url)
    try:
        assert await most_overtaken_under_load(pool) == 0
    finally:
        await pool.close()


def test_most_overtaken_counts_later_arrivals_served_first() -> None:
    assert most_overtaken([0, 1, 2, 3]) == 0
    assert most_overtaken([1, 2, 0, 3]) == 2
    assert most_overtaken([3, 0, 1, 2]) == 1


async def test_a_wait_is_still_bounded_and_no_release_adds_a_turn(pg_admin_url: str) -> None:
    """With every connection held, a waiter times out after the bound. Neither that, nor a
    second release of a connection, nor a stranger's refused release, leaves the pool
    with more or fewer turns than connections: requests are still served in order."""
    pool = await _pool(pg_admin_url)
    stranger = await asyncpg.connect(pg_admin_url)
    try:
        held = [await pool.acquire() for _ in range(POOL_SIZE)]
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.acquire()
        assert ACQUIRE_TIMEOUT <= time.monotonic() - start < ACQUIRE_TIMEOUT + 0.5
        for connection in held:
            await pool.release(connection)
            await pool.release(connection)  # a second release changes nothing
        with pytest.raises(asyncpg.InterfaceError):
            await pool.release(stranger)
        again = [await pool.acquire() for _ in range(POOL_SIZE)]  # no turn was lost
        for connection in again:
            await pool.release(connection)
        assert await most_overtaken_under_load(pool) == 0  # and none was added
    finally:
        await stranger.close()
        await pool.close()


async def test_a_failed_connection_gives_its_turn_back() -> None:
    """A request that got a turn but no connection (the database refused it) returns the
    turn: later requests fail the same way, fast, instead of waiting for turns long gone."""
    pool = await create_pool(
        "postgresql://postgres@127.0.0.1:1/postgres",  # nothing listens on port 1
        acquire_timeout=ACQUIRE_TIMEOUT,
        min_size=0,
        max_size=POOL_SIZE,
    )
    try:
        for _ in range(3 * POOL_SIZE):
            with pytest.raises(ConnectionRefusedError):  # not a TimeoutError
                await pool.acquire()
    finally:
        await pool.close()
