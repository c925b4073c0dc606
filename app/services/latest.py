"""The simulator's latest processed action id, kept in the database for every replica."""

from __future__ import annotations

from app.models import Latest
from app.observability.metrics import timed_db

LATEST_ID = 1


@timed_db("latest_get")
async def get() -> int:
    value = await Latest.filter(id=LATEST_ID).first().values_list("value", flat=True)
    return -1 if value is None else int(value)  # type: ignore[call-overload]


@timed_db("latest_record")
async def record(value: int) -> None:
    """One UPDATE of the row the first migration created."""
    updated = await Latest.filter(id=LATEST_ID).update(value=value)
    if not updated:  # the row was removed by hand: put it back
        await Latest.update_or_create(id=LATEST_ID, defaults={"value": value})
