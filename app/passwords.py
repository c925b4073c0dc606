"""Password hashing: argon2id at OWASP's minimum, off the event loop, bounded.

argon2id with m=19 MiB, t=2, p=1 is OWASP's first recommended setting (about
16 ms a hash here). Hashing runs in a small thread pool (argon2-cffi releases
the GIL), so a burst of registrations queues there instead of stalling every
other request on the event loop; the pool size bounds the CPU and memory a
burst can take.

Hashes imported from the legacy Flask MiniTwit (werkzeug ``pbkdf2:`` and
``scrypt:``) still verify, and ``needs_upgrade`` tells the caller to replace
them with argon2id after the next successful login.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from werkzeug.security import check_password_hash as check_werkzeug_hash

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_LEGACY_PREFIXES = ("pbkdf2:", "scrypt:")
_pool: ThreadPoolExecutor | None = None


def configure(max_concurrency: int) -> None:
    """Size the hashing pool; called once at start-up."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False)
    _pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="pwhash")


def _executor() -> ThreadPoolExecutor:
    if _pool is None:
        configure(2)
    assert _pool is not None
    return _pool


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
