"""Posting messages and reading timelines, newest first.

Every timeline orders by (pub_date, id) descending, which is both the
contract's deterministic order (ties broken by insertion) and the order of
the indexes in ``app.models``, so a page is an index range scan, not a sort.
Older pages use a keyset cursor ("before this message"), so page 1,000 costs
what page 1 costs and new posts do not shift the pages a reader is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app.errors import InvalidInput
from app.models import Message
from app.services import follows
from app.validation import check_message


@dataclass(frozen=True)
class Post:
    id: int
    text: str
    pub_date: int
    username: str
    email: str


@dataclass(frozen=True)
class Cursor:
    """Position of the last message on a page; the next page starts just after it."""

    pub_date: int
    id: int

    def encode(self) -> str:
        return f"{self.pub_date}.{self.id}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        if not raw:
            return None
        try:
            pub_date, message_id = (int(part) for part in raw.split(".", 1))
        except ValueError:
            raise InvalidInput("Invalid page position") from None
        return cls(pub_date, message_id)


async def post(author_id: int, text: str, now: float | None = None) -> None:
    check_message(text)
    pub_date = int(time.time() if now is None else now)
    await Message.create(author_id=author_id, text=text, pub_date=pub_date, flagged=False)


def _page(query: QuerySet[Message], limit: int, before: Cursor | None) -> QuerySet[Message]:
    query = query.filter(flagged=False)
    if before is not None:
        # The redundant pub_date bound lets the index range start at the cursor.
        query = query.filter(
            Q(pub_date__lt=before.pub_date) | Q(pub_date=before.pub_date, id__lt=before.id),
            pub_date__lte=before.pub_date,
        )
    return query.order_by("-pub_date", "-id").limit(limit)


async def _fetch(query: QuerySet[Message]) -> list[Post]:
    rows: list[dict[str, Any]] = await query.values(
        "id", "text", "pub_date", username="author__username", email="author__email"
    )
    return [Post(**row) for row in rows]


async def public(limit: int, before: Cursor | None = None) -> list[Post]:
    return await _fetch(_page(Message.all(), limit, before))


async def by_author(author_id: int, limit: int, before: Cursor | None = None) -> list[Post]:
    return await _fetch(_page(Message.filter(author_id=author_id), limit, before))


async def home(user_id: int, limit: int, before: Cursor | None = None) -> list[Post]:
    """The user's own messages and those of everyone they follow."""
    authors = [user_id, *await follows.followed_ids(user_id)]
    return await _fetch(_page(Message.filter(author_id__in=authors), limit, before))
