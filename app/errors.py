"""Domain errors the service layer raises, and how to recognise a database outage.

The HTTP layers turn these into status codes (400, 404, 503); the service
layer never knows about HTTP.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import asyncpg
from tortoise.exceptions import DBConnectionError, TransactionManagementError


class DomainError(Exception):
    """An expected failure with a message fit to show the user as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request is well-formed but its values break a rule (HTTP 400)."""


class UserNotFound(DomainError):
    """A username that does not exist (HTTP 404)."""

    def __init__(self, username: str) -> None:
        super().__init__(f"Unknown user: {username}")
        self.username = username


_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    DBConnectionError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # Raised for a pooled connection the server ended while it sat idle: when
    # PostgreSQL shuts down, its FATAL 57P01 arrives between statements and
    # the connection refuses the next one with "cannot switch to state 12;
    # another operation (2) is in progress" (met by the fault tests).
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,
    asyncpg.OperatorInterventionError,
    TransactionManagementError,
)


def is_database_outage(exc: BaseException) -> bool:
    """True for failures caused by the database being down, slow or locked, not by a bug.

    The whole chain counts, not only ``exc``: Tortoise re-raises driver errors
    sometimes with ``from`` (``__cause__``) and sometimes inside ``except``
    without it (``__context__``, its SQLite client), and whatever a ``finally``
    or an ``__aexit__`` raises while an outage unwinds (the scenario's
    ``latest``, a transaction's rollback) has the outage as its context.
    """
    return any(
        isinstance(current, _OUTAGE_TYPES) or _is_sqlite_busy(current) for current in _chain(exc)
    )


def is_lock_timeout(exc: BaseException) -> bool:
    """True where PostgreSQL gave up waiting for a lock (``lock_timeout``, 55P03)."""
    return any(isinstance(current, asyncpg.LockNotAvailableError) for current in _chain(exc))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or during, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_sqlite_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "unable to open" in text
