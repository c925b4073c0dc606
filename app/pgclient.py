"""Tortoise's asyncpg engine, with a bounded and fair wait for a pooled connection.

Tortoise acquires pooled connections without a timeout. ``command_timeout``
bounds each statement, but a request that finds every pooled connection busy
(all stuck behind a lock, say) waited in the pool's queue for as long as the
requests ahead of it took: with 20 requests on a pool of 4 and statements
timing out after 0.25 s, the last ones answered after 1.3 s, well past the
simulator's 0.3 s. Here the wait for a connection is bounded too
(``acquire_timeout``, set from ``MINITWIT_DB_TIMEOUT`` by ``app.db``); past
it, ``asyncio.TimeoutError`` is raised, which ``app.errors`` classifies as an
outage (503).

And the wait is in arrival order. asyncpg hands out pooled connections
through an ``asyncio.Queue``, which lets a newcomer take a connection that was
just returned for a woken waiter; the waiter goes back to the end of the
line. Under saturation (32 keep-alive clients reading, a pool of 10) a few
requests in each thousand were overtaken again and again until their 0.25 s
ran out: 503s (11 to 30 in five seconds) and a p99 of 157 to 278 ms from a
database that answered in a millisecond. A fair ``asyncio.Semaphore`` of the
pool's size now admits waiters first come, first served, so a connection is
free for whoever gets past it.

Used as the ``engine`` of the PostgreSQL connection in ``app.db``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy
from tortoise.backends.asyncpg.client import AsyncpgDBClient


class BoundedAcquirePool(asyncpg.Pool):
    """An asyncpg pool whose ``acquire()`` waits at most ``acquire_timeout`` by default,
    and serves its waiters in the order they came."""

    acquire_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One turn per pooled connection; asyncio.Semaphore wakes its waiters in order
        # and lets no newcomer past them (Python 3.11.1 and later).
        self._turns = asyncio.Semaphore(self._maxsize)

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)

    async def _acquire(self, timeout: float | None) -> PoolConnectionProxy:
        # One timer bounds the whole wait, the turn and then the connection (asyncpg's
        # own bound would start a second one on every statement).
        async with asyncio.timeout(timeout):
            await self._turns.acquire()
            try:
                proxy: PoolConnectionProxy = await super()._acquire(None)
            except BaseException:
                self._turns.release()
                raise
        return proxy

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        # A connection of this pool not yet released holds a turn; anything else (a
        # second release, a stranger, which asyncpg refuses) holds none.
        holding = (
            type(connection) is PoolConnectionProxy
            and connection._holder._pool is self
            and connection._con is not None
        )
        if timeout is None:  # asyncpg would take the acquire's, which it no longer sees
            timeout = self.acquire_timeout
        try:
            await super().release(connection, timeout=timeout)
        finally:
            if holding:
                self._turns.release()


# What asyncpg.create_pool would pass for the arguments Tortoise leaves out.
_POOL_DEFAULTS: dict[str, Any] = {
    "max_queries": 50_000,
    "max_inactive_connection_lifetime": 300.0,
    "record_class": asyncpg.Record,
    "connection_class": asyncpg.Connection,
    "loop": None,
}


async def create_pool(
    dsn: str | None, *, acquire_timeout: float | None, **kwargs: Any
) -> BoundedAcquirePool:
    """``asyncpg.create_pool`` for a ``BoundedAcquirePool``."""
    pool = BoundedAcquirePool(dsn, **{**_POOL_DEFAULTS, **kwargs})
    pool.acquire_timeout = acquire_timeout
    return await pool


class BoundedAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        return await create_pool(None, acquire_timeout=self.acquire_timeout, **kwargs)


client_class = BoundedAsyncpgClient
