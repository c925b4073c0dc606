"""Which failures are a database outage (503) and which are bugs (500).

The shapes below are ones met for real: the fault tests stop PostgreSQL
mid-replay, and a pooled connection that received the server's FATAL
"terminating connection" while idle refused its next statement with asyncpg's
InternalClientError ("another operation is in progress"): a 500 where the
contract says 503.
"""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from app.errors import is_database_outage


def raised_while_handling(first: BaseException, then: BaseException) -> BaseException:
    """``then``, raised inside ``except`` for ``first``, as Python chains it."""
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 - the implicit chain is what is being built
    except BaseException as exc:
        return exc


def raised_from(cause: BaseException, exc: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


def test_a_pooled_connection_the_server_ended_is_an_outage() -> None:
    assert is_database_outage(
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        )
    )


def test_whatever_fails_while_an_outage_unwinds_is_the_outage() -> None:
    rollback_failed = RuntimeError("could not roll back")
    assert is_database_outage(raised_while_handling(ConnectionResetError(), rollback_failed))


def test_a_bug_is_not_an_outage() -> None:
    assert not is_database_outage(KeyError("username"))
    assert not is_database_outage(raised_while_handling(ValueError("bad"), KeyError("username")))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_outages_directly_and_wrapped_twice(exc: BaseException) -> None:
    assert is_database_outage(exc)
    assert is_database_outage(raised_from(raised_from(exc, OperationalError(exc)), RuntimeError()))


def test_sqlite_locked_is_an_outage_and_other_sqlite_errors_are_not() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_database_outage(raised_while_handling(locked, OperationalError(locked)))
    no_table = sqlite3.OperationalError("no such table: user")
    assert not is_database_outage(raised_while_handling(no_table, OperationalError(no_table)))


def test_a_constraint_violation_is_not_an_outage() -> None:
    unique = asyncpg.UniqueViolationError("duplicate key value")
    assert not is_database_outage(raised_from(unique, IntegrityError(unique)))


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = ValueError("a"), KeyError("b")
    first.__context__, second.__context__ = second, first
    assert not is_database_outage(first)
