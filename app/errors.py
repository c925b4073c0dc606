"""Domain errors the service layer raises, and how to recognise a database outage.

The HTTP layers turn these into status codes (400, 404, 503); the service
layer never knows about HTTP.
"""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
from tortoise.exceptions import DBConnectionError, OperationalError, TransactionManagementError


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
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,
    asyncpg.OperatorInterventionError,
    TransactionManagementError,
)


def is_database_outage(exc: BaseException) -> bool:
    """True for failures caused by the database being down, slow or locked, not by a bug."""
    if isinstance(exc, _OUTAGE_TYPES):
        return True
    # Tortoise re-raises driver errors sometimes with ``from`` (__cause__) and
    # sometimes inside ``except`` without it (__context__, its SQLite client).
    origin = exc.__cause__ or exc.__context__
    if isinstance(exc, OperationalError) and isinstance(origin, sqlite3.OperationalError):
        text = str(origin).lower()
        return "locked" in text or "busy" in text or "unable to open" in text
    return origin is not None and origin is not exc and isinstance(origin, _OUTAGE_TYPES)
