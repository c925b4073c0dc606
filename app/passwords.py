"""Password hashing: argon2id at OWASP's minimum, off the event loop, bounded.

argon2id with m=19 MiB, t=2, p=1 is OWASP's first recommended setting (about
16 ms a hash here). Hashing runs in a small thread pool (argon2-cffi releases
the GIL), so a burst of registrations queues there instead of stalling every
other request on the event loop; the pool size bounds the CPU and memory a
burst can take. Whole registrations and logins are admitted a few at a time
too (``admitted``), so that a burst's database work does not crowd the event
loop either.

Hashes imported from the legacy Flask MiniTwit (werkzeug ``pbkdf2:`` and
``scrypt:``) still verify, and ``needs_upgrade`` tells the caller to replace
them with argon2id after the next successful login.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.security import check_password_hash as check_werkzeug_hash

from app.config import Settings

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_LEGACY_PREFIXES = ("pbkdf2:", "scrypt:")


def admissions_for(max_concurrency: int) -> int:
    """One more than the pool has threads: while one registration does its queries,
    another is being hashed, so the pool never waits for the database."""
    return max_concurrency + 1


_pool: ThreadPoolExecutor | None = None
_DEFAULT_CONCURRENCY = Settings.hash_concurrency  # until configure() (a script, a test)
_admissions = admissions_for(_DEFAULT_CONCURRENCY)
# One semaphore per event loop (asyncio binds a semaphore to the loop it first waits on).
_admission: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None


def configure(max_concurrency: int) -> None:
    """Size the hashing pool, and the admissions with it; called once at start-up."""
    global _pool, _admissions, _admission
    if _pool is not None:
        _pool.shutdown(wait=False)
    _pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="pwhash")
    _admissions, _admission = admissions_for(max_concurrency), None


def _executor() -> ThreadPoolExecutor:
    if _pool is None:
        configure(_DEFAULT_CONCURRENCY)
    assert _pool is not None
    return _pool


@contextlib.asynccontextmanager
async def admitted() -> AsyncIterator[None]:
    """Hold one admission for a whole registration or login: its queries and its hash.

    Bounding the hashes alone was not enough. A burst of 50 registrations all
    ran their database check at once, and every other request waited behind
    that clump on the event loop: their p99 during the burst was 57 to 73 ms
    with one hashing thread and 74 to 126 ms with two; with admissions, 28 to
    42 ms and 15 to 28 ms (``bench.hashing``, docs/performance.md, ninth pass).
    Those past the bound wait here, in a queue that costs nothing.
    """
    global _admission
    loop = asyncio.get_running_loop()
    if _admission is None or _admission[0] is not loop:
        _admission = (loop, asyncio.Semaphore(_admissions))
    async with _admission[1]:
        yield


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


def verify_password_sync(pw_hash: str, password: str) -> bool:
    if pw_hash.startswith(_LEGACY_PREFIXES):
        return check_werkzeug_hash(pw_hash, password)
    try:
        return _hasher.verify(pw_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_upgrade(pw_hash: str) -> bool:
    """Legacy werkzeug hashes, and argon2 hashes weaker than today's parameters."""
    if pw_hash.startswith(_LEGACY_PREFIXES):
        return True
    try:
        return _hasher.check_needs_rehash(pw_hash)
    except InvalidHashError:
        return True


async def hash_password(password: str) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), hash_password_sync, password)


async def verify_password(pw_hash: str, password: str) -> bool:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), verify_password_sync, pw_hash, password)
