"""The simulator's latest processed action id, kept in the database for every replica.

An action's id is recorded once it passed authorization, whatever its
outcome. On PostgreSQL the statement that does an action's work records it
in the same round trip (``RECORD_SQL`` as one of its CTEs); whatever was not
recorded that way (a 400 before any query, every action on SQLite) is
recorded on its own by ``settle``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app.models import Latest
from app.observability.metrics import timed_db

LATEST_ID = 1

# A data-modifying CTE named ``noted`` that records the bigint parameter
# ``{value}`` (NULL: record nothing). An upsert, so a row removed by hand comes back.
RECORD_SQL = f"""noted AS (
    INSERT INTO "latest" (id, value) SELECT {LATEST_ID}, {{value}}::bigint
    WHERE {{value}}::bigint IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET value = excluded.value
)"""


@dataclass
class Pending:
    """An action id to record as ``latest``, exactly once."""

    value: int
    recorded: bool = False


async def fetch_recording(
    db: BaseDBAsyncClient, sql: str, values: list[Any], pending: Pending | None
) -> list[dict[str, Any]]:
    """Run ``sql``, whose ``RECORD_SQL`` CTE takes one parameter after ``values``; its rows.

    The CTE records ``pending`` (or nothing: NULL) in the same round trip,
    whatever else the statement finds, so ``pending`` is marked recorded.
    """
    value = None if pending is None or pending.recorded else pending.value
    rows: list[dict[str, Any]] = await db.execute_query_dict(sql, [*values, value])
    if pending is not None:
        pending.recorded = True
    return rows


async def run_recording(
    db: BaseDBAsyncClient, sql: str, values: list[Any], pending: Pending | None
) -> dict[str, Any]:
    """``fetch_recording`` of a statement that returns one row: that row."""
    return (await fetch_recording(db, sql, values, pending))[0]


# No parameter, so the same text on SQLite and PostgreSQL; no ORM query to build
# on the simulator's most frequent read.
_GET_SQL = f'SELECT value FROM "latest" WHERE id = {LATEST_ID}'


@timed_db("latest_get")
async def get() -> int:
    rows = await Latest._meta.db.execute_query_dict(_GET_SQL)
    return -1 if not rows else int(rows[0]["value"])


async def settle(pending: Pending | None) -> None:
    """Record ``pending`` unless a statement already did."""
    if pending is not None and not pending.recorded:
        await record(pending.value)
        pending.recorded = True


@timed_db("latest_record")
async def record(value: int) -> None:
    """One UPDATE of the row the first migration created."""
    updated = await Latest.filter(id=LATEST_ID).update(value=value)
    if not updated:  # the row was removed by hand: put it back
        await Latest.update_or_create(id=LATEST_ID, defaults={"value": value})
