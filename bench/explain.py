"""See the SQL a request really runs, and how PostgreSQL runs it.

``capture_sql()`` records every statement Tortoise sends (with its bind
values) by listening to Tortoise's own ``tortoise.db_client`` debug log, so
what gets EXPLAINed is exactly what the service layer built for a request,
not a hand-written copy of it. ``explain()`` runs EXPLAIN inside a
transaction that is always rolled back, so EXPLAIN ANALYZE of an INSERT or
DELETE leaves no trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

_LOGGER = "tortoise.db_client"
_QUERY_FORMAT = "%s: %s"  # how the asyncpg client logs each statement and its values


@dataclass(frozen=True)
class Statement:
    sql: str
    values: tuple[Any, ...]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[Statement] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg != _QUERY_FORMAT or not isinstance(record.args, tuple):
            return
        sql, raw = record.args
        values: list[Any] = list(raw) if isinstance(raw, list | tuple) else []
        if values and all(isinstance(row, list | tuple) for row in values):
            # execute_many (bulk_create): one execution per row of values
            self.statements.extend(Statement(str(sql), tuple(row)) for row in values)
        else:
            self.statements.append(Statement(str(sql), tuple(values)))


@contextmanager
def capture_sql() -> Iterator[list[Statement]]:
    """Every statement Tortoise executes inside the ``with`` block, in order."""
    logger = logging.getLogger(_LOGGER)
    recorder = _Recorder()
    old_level = logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield recorder.statements
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)


class _Rollback(Exception):
    pass


async def explain(
    conn: asyncpg.Connection, statement: Statement, options: str = "ANALYZE, BUFFERS"
) -> list[str]:
    """EXPLAIN (options) of one captured statement, as text lines; changes are rolled back."""
    lines: list[str] = []
    try:
        async with conn.transaction():
            rows = await conn.fetch(f"EXPLAIN ({options}) {statement.sql}", *statement.values)
            lines = [str(row[0]) for row in rows]
            raise _Rollback
    except _Rollback:
        pass
    return lines


async def explain_json(conn: asyncpg.Connection, statement: Statement) -> dict[str, Any]:
    """The plan tree of one statement (EXPLAIN (ANALYZE, FORMAT JSON)); rolled back."""
    lines = await explain(conn, statement, "ANALYZE, FORMAT JSON")
    plan: dict[str, Any] = json.loads("".join(lines))[0]["Plan"]
    return plan


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a JSON plan tree, depth first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)
