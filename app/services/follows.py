"""Who follows whom."""

from __future__ import annotations

from app.models import Follower
from app.observability.metrics import timed_db


@timed_db("follow")
async def follow(who_id: int, whom_id: int) -> None:
    """Idempotent: the unique pair absorbs repeats and races (INSERT ... ON CONFLICT DO NOTHING)."""
    await Follower.bulk_create([Follower(who_id=who_id, whom_id=whom_id)], ignore_conflicts=True)


@timed_db("unfollow")
async def unfollow(who_id: int, whom_id: int) -> None:
    """Unfollowing someone not followed changes nothing, by contract."""
    await Follower.filter(who_id=who_id, whom_id=whom_id).delete()


@timed_db("is_following")
async def is_following(who_id: int, whom_id: int) -> bool:
    return await Follower.exists(who_id=who_id, whom_id=whom_id)


@timed_db("followed_ids")
async def followed_ids(who_id: int) -> list[int]:
    rows = await Follower.filter(who_id=who_id).values_list("whom_id", flat=True)
    return [int(whom_id) for whom_id in rows]  # type: ignore[call-overload]


@timed_db("followed_usernames")
async def followed_usernames(who_id: int, limit: int) -> list[str]:
    """Whom ``who_id`` follows, in the order the follows were made."""
    if limit <= 0:  # Tortoise drops LIMIT 0 and would return every row
        return []
    rows = (
        await Follower.filter(who_id=who_id)
        .order_by("id")
        .limit(limit)
        .values_list("whom__username", flat=True)
    )
    return [str(name) for name in rows]
