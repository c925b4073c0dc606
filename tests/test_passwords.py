"""Admissions: registrations and logins run a few at a time, on both databases.

``bench.hashing`` measures why (a burst's database work crowded out every
other request); these tests hold the admissions themselves and check that a
registration or login past the bound waits, whole, until one is free.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from app import db, passwords
from app.errors import InvalidInput
from app.services import users
from tests.conftest import make_settings
from tests.db_state import fetch

HASH_CONCURRENCY = 1
HANG_GUARD = 15.0
# Long enough for a registration that was not held back to have finished here.
HELD_FOR = 0.5


@pytest.fixture
async def connected(clean_db: str) -> AsyncIterator[str]:
    await db.connect(make_settings(clean_db, hash_concurrency=HASH_CONCURRENCY))
    passwords.configure(HASH_CONCURRENCY)
    try:
        yield clean_db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def holding(admissions: int) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as held:
        for _ in range(admissions):
            await held.enter_async_context(passwords.admitted())
        yield


async def usernames(database_url: str) -> list[str]:
    return sorted(str(row[0]) for row in await fetch(database_url, 'SELECT username FROM "user"'))


async def test_one_admission_more_than_the_pool_has_threads(connected: str) -> None:
    bound = passwords.admissions_for(HASH_CONCURRENCY)
    assert bound == HASH_CONCURRENCY + 1
    async with holding(bound - 1):
        await asyncio.wait_for(users.register("first", "first@example.com", "pw"), HANG_GUARD)
    assert await usernames(connected) == ["first"]


async def test_a_registration_past_the_bound_waits_before_any_query(connected: str) -> None:
    async with holding(passwords.admissions_for(HASH_CONCURRENCY)):
        waiting = asyncio.ensure_future(users.register("late", "late@example.com", "pw"))
        await asyncio.sleep(HELD_FOR)
        assert not waiting.done()
        assert await usernames(connected) == []
    user = await asyncio.wait_for(waiting, HANG_GUARD)
    assert user.username == "late"
    assert await usernames(connected) == ["late"]


async def test_a_login_past_the_bound_waits_too(connected: str) -> None:
    await users.register("alice", "alice@example.com", "secret")
    async with holding(passwords.admissions_for(HASH_CONCURRENCY)):
        waiting = asyncio.ensure_future(users.authenticate("alice", "secret"))
        await asyncio.sleep(HELD_FOR)
        assert not waiting.done()
    assert (await asyncio.wait_for(waiting, HANG_GUARD)).username == "alice"


async def test_a_refused_registration_gives_its_admission_back(connected: str) -> None:
    await users.register("taken", "taken@example.com", "pw")
    for _ in range(passwords.admissions_for(HASH_CONCURRENCY) + 1):
        with pytest.raises(InvalidInput):
            await users.register("taken", "other@example.com", "pw")
    async with holding(passwords.admissions_for(HASH_CONCURRENCY) - 1):
        await asyncio.wait_for(users.register("next", "next@example.com", "pw"), HANG_GUARD)


def test_admissions_work_on_every_event_loop() -> None:
    """A worker's loop, then a test's or a script's: asyncio binds a semaphore to the
    first loop that waits on it, and a second loop must not inherit that one."""
    passwords.configure(HASH_CONCURRENCY)
    bound = passwords.admissions_for(HASH_CONCURRENCY)

    async def contend() -> None:
        async with holding(bound):
            waiting = asyncio.ensure_future(_take_an_admission())
            await asyncio.sleep(0.05)
            assert not waiting.done()
        await asyncio.wait_for(waiting, HANG_GUARD)

    asyncio.run(contend())
    asyncio.run(contend())


async def _take_an_admission() -> None:
    async with passwords.admitted():
        await asyncio.sleep(0)
