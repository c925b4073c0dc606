"""Per-worker runtime samples: CPU, memory, the database pool and requests in progress,
every second.

In multiprocess mode prometheus-client cannot collect another process's
stats at scrape time, so each worker samples its own into shared metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource

from tortoise.connection import get_connection

from app.observability import metrics

SAMPLE_EVERY = 1.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return 0


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def sample_pool(connection_name: str) -> None:
    try:
        client = get_connection(connection_name)
    except Exception:
        return
    pool = getattr(client, "_pool", None)
    if pool is not None:
        size, idle = pool.get_size(), pool.get_idle_size()
        metrics.DB_POOL_SIZE.labels(state="in_use").set(size - idle)
        metrics.DB_POOL_SIZE.labels(state="idle").set(idle)
        metrics.DB_POOL_MAX.set(pool.get_max_size())
    else:  # SQLite: one connection
        metrics.DB_POOL_SIZE.labels(state="in_use").set(0)
        metrics.DB_POOL_SIZE.labels(state="idle").set(1)
        metrics.DB_POOL_MAX.set(1)


class RuntimeSampler:
    def __init__(self, connection_name: str) -> None:
        self.connection_name = connection_name
        self._task: asyncio.Task[None] | None = None
        self._cpu = _cpu_seconds()

    def sample(self) -> None:
        cpu = _cpu_seconds()
        metrics.PROCESS_CPU_SECONDS.inc(max(0.0, cpu - self._cpu))
        self._cpu = cpu
        metrics.PROCESS_RESIDENT_MEMORY.set(_resident_bytes())
        metrics.PROCESS_OPEN_FDS.set(_open_fds())
        sample_pool(self.connection_name)
        metrics.publish_pending()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        metrics.publish_pending()  # this worker's last second of requests
        metrics.mark_worker_dead(os.getpid())
