"""Who follows whom."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app import db
from app.errors import UserNotFound
from app.models import Follower
from app.observability.metrics import timed_db
from app.services import latest, users

# One round trip on PostgreSQL: both users by name, the change, and ``latest``.
# The ids come back so the caller can tell which name was unknown.
_CHANGE_SQL = """
WITH who AS (SELECT id FROM "user" WHERE username = $1),
whom AS (SELECT id FROM "user" WHERE username = $2),
changed AS ({change}),
{record}
SELECT (SELECT id FROM who) AS who_id, (SELECT id FROM whom) AS whom_id
"""
_FOLLOW_SQL = _CHANGE_SQL.format(
    change='INSERT INTO "follower" (who_id, whom_id) SELECT who.id, whom.id FROM who, whom '
    "ON CONFLICT (who_id, whom_id) DO NOTHING",
    record=latest.RECORD_SQL.format(value="$3"),
)
_UNFOLLOW_SQL = _CHANGE_SQL.format(
    change='DELETE FROM "follower" '
    "WHERE who_id = (SELECT id FROM who) AND whom_id = (SELECT id FROM whom)",
    record=latest.RECORD_SQL.format(value="$3"),
)


@timed_db("follow")
async def follow(who: str, whom: str, *, pending: latest.Pending | None = None) -> None:
    """``who`` follows ``whom`` (usernames); idempotent, races included: the unique
    pair absorbs repeats (INSERT ... ON CONFLICT DO NOTHING)."""
    await _change(_FOLLOW_SQL, who, whom, pending, _follow_ids)


@timed_db("unfollow")
async def unfollow(who: str, whom: str, *, pending: latest.Pending | None = None) -> None:
    """Unfollowing someone not followed changes nothing, by contract."""
    await _change(_UNFOLLOW_SQL, who, whom, pending, _unfollow_ids)


async def _change(
    sql: str,
    who: str,
    whom: str,
    pending: latest.Pending | None,
    by_ids: Callable[[int, int], Awaitable[None]],
) -> None:
    """Raises ``UserNotFound`` for the first unknown name (``who`` first), as the API reports it."""
    users.check_lookup(who)
    users.check_lookup(whom)
    if not db.is_postgres():
        await by_ids(await users.get_id(who), await users.get_id(whom))
        await latest.settle(pending)
        return
    row = await latest.run_recording(Follower._meta.db, sql, [who, whom], pending)
    if row["who_id"] is None:
        raise UserNotFound(who)
    if row["whom_id"] is None:
        raise UserNotFound(whom)


async def _follow_ids(who_id: int, whom_id: int) -> None:
    await Follower.bulk_create([Follower(who_id=who_id, whom_id=whom_id)], ignore_conflicts=True)


async def _unfollow_ids(who_id: int, whom_id: int) -> None:
    await Follower.filter(who_id=who_id, whom_id=whom_id).delete()


@timed_db("is_following")
async def is_following(who_id: int, whom_id: int) -> bool:
    return await Follower.exists(who_id=who_id, whom_id=whom_id)


@timed_db("followed_ids")
async def followed_ids(who_id: int) -> list[int]:
    rows = await Follower.filter(who_id=who_id).values_list("whom_id", flat=True)
    return [int(whom_id) for whom_id in rows]  # type: ignore[call-overload]


# Whom a user (by name) follows, and ``latest``, in one round trip on PostgreSQL.
# No row: no such user; one row with a NULL name: a user who follows no one.
_FOLLOWED_SQL = f"""
WITH who AS (SELECT id FROM "user" WHERE username = $2),
{latest.RECORD_SQL.format(value="$3")}
SELECT followed.username
FROM who LEFT JOIN LATERAL (
    SELECT f.id, u.username FROM "follower" AS f JOIN "user" AS u ON u.id = f.whom_id
    WHERE f.who_id = who.id
    ORDER BY f.id
    LIMIT $1
) AS followed ON true
ORDER BY followed.id
"""


@timed_db("followed_usernames")
async def followed_usernames(
    username: str, limit: int, *, pending: latest.Pending | None = None
) -> list[str]:
    """Whom the user named ``username`` follows, in the order the follows were made
    (``UserNotFound`` if there is no such user); ``pending`` recorded in passing."""
    users.check_lookup(username)
    if db.is_postgres():
        rows = await latest.fetch_recording(
            Follower._meta.db, _FOLLOWED_SQL, [limit, username], pending
        )
        if not rows:
            raise UserNotFound(username)
        return [str(row["username"]) for row in rows if row["username"] is not None]
    who_id = await users.get_id(username)
    if limit <= 0:  # Tortoise drops LIMIT 0 and would return every row
        return []
    names = (
        await Follower.filter(who_id=who_id)
        .order_by("id")
        .limit(limit)
        .values_list("whom__username", flat=True)
    )
    return [str(name) for name in names]
