"""Tortoise's asyncpg engine, with a bounded wait for a pooled connection.

Tortoise acquires pooled connections without a timeout. ``command_timeout``
bounds each statement, but a request that finds every pooled connection busy
(all stuck behind a lock, say) waited in the pool's queue for as long as the
requests ahead of it took: with 20 requests on a pool of 4 and statements
timing out after 0.25 s, the last ones answered after 1.3 s, well past the
simulator's 0.3 s. Here the wait for a connection is bounded too
(``acquire_timeout``, set from ``MINITWIT_DB_TIMEOUT`` by ``app.db``); past
it, ``asyncio.TimeoutError`` is raised, which ``app.errors`` classifies as an
outage (503).

Used as the ``engine`` of the PostgreSQL connection in ``app.db``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext
from tortoise.backends.asyncpg.client import AsyncpgDBClient


class BoundedAcquirePool(asyncpg.Pool):
    """An asyncpg pool whose ``acquire()`` waits at most ``acquire_timeout`` by default."""

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


# What asyncpg.create_pool would pass for the arguments Tortoise leaves out.
_POOL_DEFAULTS: dict[str, Any] = {
    "max_queries": 50_000,
    "max_inactive_connection_lifetime": 300.0,
    "record_class": asyncpg.Record,
}


class BoundedAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    async def create_pool(self, **kwargs: Any) -> asyncpg.Pool:
        pool = BoundedAcquirePool(None, **{**_POOL_DEFAULTS, **kwargs})
        pool.acquire_timeout = self.acquire_timeout
        return await pool


client_class = BoundedAsyncpgClient
