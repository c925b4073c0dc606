"""Posting messages and reading timelines, newest first.

Every timeline orders by (pub_date, id) descending, which is both the
contract's deterministic order (ties broken by insertion) and the order of
the indexes in ``app.models``, so a page is an index range scan, not a sort.
Older pages use a keyset cursor ("before this message"), so page 1,000 costs
what page 1 costs and new posts do not shift the pages a reader is on.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from app import db
from app.errors import InvalidInput, UserNotFound
from app.models import Message
from app.observability.metrics import timed_db
from app.services import follows, latest, users
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
        if not (
            _BIGINT_MIN <= pub_date <= _BIGINT_MAX and _BIGINT_MIN <= message_id <= _BIGINT_MAX
        ):
            raise InvalidInput("Invalid page position")  # no column could hold it: not ours
        return cls(pub_date, message_id)


# The range of ``pub_date`` and ``id`` (bigint on both databases).
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


# One round trip on PostgreSQL: the author by name, the message, and ``latest``.
_POST_SQL = f"""
WITH author AS (SELECT id FROM "user" WHERE username = $1),
posted AS (
    INSERT INTO "message" (author_id, text, pub_date, flagged)
    SELECT id, $2, $3, false FROM author
),
{latest.RECORD_SQL.format(value="$4")}
SELECT EXISTS (SELECT FROM author) AS found
"""


@timed_db("message_insert")
async def post(
    author: str, text: str, *, now: float | None = None, pending: latest.Pending | None = None
) -> None:
    """Post ``text`` as the user named ``author`` (``UserNotFound`` if there is none)."""
    try:
        check_message(text)
    except InvalidInput:
        await users.get_id(author)  # an unknown author is a 404 before a bad message is a 400
        raise
    users.check_lookup(author)
    pub_date = int(time.time() if now is None else now)
    if not db.is_postgres():
        author_id = await users.get_id(author)
        await Message.create(author_id=author_id, text=text, pub_date=pub_date, flagged=False)
        await latest.settle(pending)
        return
    row = await latest.run_recording(Message._meta.db, _POST_SQL, [author, text, pub_date], pending)
    if not row["found"]:
        raise UserNotFound(author)


async def _fetch_page(query: QuerySet[Message], limit: int, before: Cursor | None) -> list[Post]:
    """The newest ``limit`` unflagged messages of ``query`` older than ``before``, through
    the ORM (SQLite).

    ``limit`` 0 is answered here, without a query: Tortoise drops ``LIMIT 0``
    and would return every row.
    """
    if limit <= 0:
        return []
    query = query.filter(flagged=False)
    if before is not None:
        # The redundant pub_date bound lets the index range start at the cursor.
        query = query.filter(
            Q(pub_date__lt=before.pub_date) | Q(pub_date=before.pub_date, id__lt=before.id),
            pub_date__lte=before.pub_date,
        )
    rows: list[dict[str, Any]] = (
        await query.order_by("-pub_date", "-id")
        .limit(limit)
        .values("id", "text", "pub_date", username="author__username", email="author__email")
    )
    return [Post(**row) for row in rows]


# The public and one author's timelines on PostgreSQL, written out: building
# them through the ORM cost more CPU than running them (about 460 against 150 us
# for a public page). ``$1`` is the page size; the cursor and ``latest``
# (``RECORD_SQL``) follow as needed.
_PUBLIC_PAGE = """
{record}SELECT m.id, m.text, m.pub_date, u.username, u.email
FROM "message" AS m JOIN "user" AS u ON u.id = m.author_id
WHERE m.flagged = false{before}
ORDER BY m.pub_date DESC, m.id DESC
LIMIT $1
"""
# An author (``$2``: their id or name) and their page. No row: no such author; one
# row of NULL message columns: an author with no messages. The page's (pub_date,
# id) come from the partial author index alone, then its rows by key (as the home
# timeline does): PostgreSQL plans the inner scan for an average author (the id
# comes from the outer row), and a prolific author's page still reads ``$1``
# index entries, not everything they wrote. ``flagged = false`` is a literal, so
# the partial index applies in any plan, generic ones included.
_AUTHOR_PAGE = """
WITH author AS (SELECT id, username, email FROM "user" WHERE {key} = $2){record}
SELECT m.id, m.text, m.pub_date, a.username, a.email
FROM author AS a
LEFT JOIN LATERAL (
    SELECT id, pub_date FROM "message"
    WHERE author_id = a.id AND flagged = false{before}
    ORDER BY pub_date DESC, id DESC
    LIMIT $1
) AS newest ON true
LEFT JOIN "message" AS m ON m.id = newest.id
ORDER BY newest.pub_date DESC, newest.id DESC
"""


@functools.cache
def _page_sql(author_key: str | None, cursor: bool, record: bool) -> str:
    """The page statement: everyone's, or of the author whose ``author_key`` column is
    ``$2``; after the cursor (the next two parameters) or from the newest; recording
    the last parameter as ``latest`` or not."""
    first = 2 if author_key is None else 3  # the cursor's first parameter
    latest_cte = latest.RECORD_SQL.format(value=f"${first + 2 * cursor}")
    if author_key is None:
        return _PUBLIC_PAGE.format(
            record=f"WITH {latest_cte}\n" if record else "",
            before=f" AND (m.pub_date, m.id) < (${first}, ${first + 1})" if cursor else "",
        )
    return _AUTHOR_PAGE.format(
        key=author_key,
        record=f",\n{latest_cte}" if record else "",
        before=f" AND (pub_date, id) < (${first}, ${first + 1})" if cursor else "",
    )


async def _page(
    limit: int,
    before: Cursor | None,
    pending: latest.Pending | None,
    author: tuple[str, int | str] | None = None,
) -> list[Post]:
    """A page on PostgreSQL in one statement: everyone's, or ``author``'s (a column of
    ``user`` and its value), whose absence is ``UserNotFound``."""
    values: list[Any] = [limit]
    if author is not None:
        values.append(author[1])
    if before is not None:
        values += [before.pub_date, before.id]
    sql = _page_sql(None if author is None else author[0], before is not None, pending is not None)
    client = Message._meta.db
    if pending is None:
        rows = await client.execute_query_dict(sql, values)
    else:
        rows = await latest.fetch_recording(client, sql, values, pending)
    if author is not None and not rows:
        raise UserNotFound(str(author[1]))
    return [Post(**row) for row in rows if row["id"] is not None]


@timed_db("public_timeline")
async def public(
    limit: int, before: Cursor | None = None, *, pending: latest.Pending | None = None
) -> list[Post]:
    """Everyone's newest unflagged messages; on PostgreSQL ``pending`` is recorded in passing."""
    if not db.is_postgres():
        return await _fetch_page(Message.all(), limit, before)
    return await _page(limit, before, pending)


@timed_db("user_timeline")
async def by_author(author_id: int, limit: int, before: Cursor | None = None) -> list[Post]:
    if not db.is_postgres():
        return await _fetch_page(Message.filter(author_id=author_id), limit, before)
    return await _page(limit, before, None, author=("id", author_id))


@timed_db("user_timeline")
async def by_author_name(
    username: str, limit: int, *, pending: latest.Pending | None = None
) -> list[Post]:
    """The newest page of the user named ``username`` (``UserNotFound`` if there is none);
    on PostgreSQL one round trip, which also records ``pending``."""
    users.check_lookup(username)
    if not db.is_postgres():
        author_id = await users.get_id(username)
        return await _fetch_page(Message.filter(author_id=author_id), limit, None)
    return await _page(limit, None, pending, author=("username", username))


@timed_db("home_timeline")
async def home(user_id: int, limit: int, before: Cursor | None = None) -> list[Post]:
    """The user's own messages and those of everyone they follow."""
    if db.is_postgres():
        return await home_newest_per_author(user_id, limit, before)
    return await home_any_author(user_id, limit, before)


async def home_any_author(user_id: int, limit: int, before: Cursor | None = None) -> list[Post]:
    """One query over ``author_id IN (...)``: portable, and fine on SQLite's scale.

    On PostgreSQL its plan is a gamble: either walk everyone's newest messages
    keeping the followed authors' (slow when they post rarely) or read every
    message the followed ever wrote and sort (slow when they wrote a lot).
    """
    authors = [user_id, *await follows.followed_ids(user_id)]
    return await _fetch_page(Message.filter(author_id__in=authors), limit, before)


# Each author's newest ``limit`` unflagged (pub_date, id) come from an index-only
# range scan of message_author_unflagged_idx; the newest ``limit`` of those are
# the page, and only they are read from the table. Cost: follows x limit index
# entries, however much the followed authors ever wrote. UNION, not UNION ALL:
# following oneself must not show one's messages twice.
_HOME_NEWEST_PER_AUTHOR = """
SELECT m.id, m.text, m.pub_date, u.username, u.email
FROM (
    SELECT newest.id
    FROM (
        SELECT $1::integer AS author_id
        UNION SELECT whom_id FROM follower WHERE who_id = $1
    ) AS authors
    CROSS JOIN LATERAL (
        SELECT id, pub_date FROM message
        WHERE author_id = authors.author_id AND flagged = false{before}
        ORDER BY pub_date DESC, id DESC
        LIMIT $2
    ) AS newest
    ORDER BY newest.pub_date DESC, newest.id DESC
    LIMIT $2
) AS page
JOIN message AS m ON m.id = page.id
JOIN "user" AS u ON u.id = m.author_id
ORDER BY m.pub_date DESC, m.id DESC
"""


def _home_newest_per_author_sql(
    user_id: int, limit: int, before: Cursor | None
) -> tuple[str, list[Any]]:
    """The PostgreSQL home timeline statement (LATERAL) and its values."""
    if before is None:
        return _HOME_NEWEST_PER_AUTHOR.format(before=""), [user_id, limit]
    sql = _HOME_NEWEST_PER_AUTHOR.format(before=" AND (pub_date, id) < ($3, $4)")
    return sql, [user_id, limit, before.pub_date, before.id]


async def home_newest_per_author(
    user_id: int, limit: int, before: Cursor | None = None
) -> list[Post]:
    """The home timeline in one PostgreSQL statement, bounded by follows x ``limit``."""
    sql, values = _home_newest_per_author_sql(user_id, limit, before)
    rows = await Message._meta.db.execute_query_dict(sql, values)
    return [Post(**row) for row in rows]
