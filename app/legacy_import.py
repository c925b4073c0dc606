"""Import a legacy ITU-MiniTwit SQLite database (tables ``user``, ``follower``, ``message``).

Idempotent by content, so it can be re-run after a partial migration window:
users are matched by username, follows by the unique pair, and messages by
(author, pub_date, text) counted as a multiset, so a legacy database that
really holds the same message twice still imports both copies, once. The
whole import is one transaction: it lands completely or not at all, and a
legacy file that fails to read half-way through leaves nothing behind.

The legacy schema declares its text columns as ``string``, which SQLite gives
NUMERIC affinity: a username or a message typed as ``1234`` was stored as the
integer 1234. Every text column is therefore read back ``CAST(... AS TEXT)``.
A NULL ``pub_date`` becomes 0 (the epoch); a NULL ``flagged`` means not flagged.
Rows that cannot be stored (an empty username, a NUL byte, invalid UTF-8, a
reference to a user that does not exist, a duplicate username) are skipped and
counted in the report.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tortoise.transactions import in_transaction

from app.models import Follower, Message, User
from app.validation import STORED_TEXT_MAX

REQUIRED_COLUMNS = {
    "user": {"user_id", "username", "email", "pw_hash"},
    "follower": {"who_id", "whom_id"},
    "message": {"message_id", "author_id", "text", "pub_date", "flagged"},
}
# Rows per INSERT batch and values per ``IN (...)`` lookup: far below the
# parameter limits of SQLite (32,766) and asyncpg (32,767).
BATCH = 1000
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

T = TypeVar("T")
MessageKey = tuple[int, int, str]  # (author id, pub_date, text)


class NotALegacyDatabase(ValueError):
    """The file is not an ITU-MiniTwit SQLite database, or cannot be read as one."""


class _LegacyReadError(Exception):
    """Reading the legacy file failed part-way (corrupt page, bad view, ...)."""


@dataclass
class ImportReport:
    users_imported: int = 0
    users_existing: int = 0
    users_skipped: int = 0
    follows_imported: int = 0
    follows_existing: int = 0
    follows_skipped: int = 0
    messages_imported: int = 0
    messages_existing: int = 0
    messages_skipped: int = 0

    def lines(self) -> list[str]:
        return [
            f"users: {self.users_imported} imported, {self.users_existing} already present, "
            f"{self.users_skipped} skipped (invalid or duplicate username)",
            f"follows: {self.follows_imported} imported, {self.follows_existing} already present, "
            f"{self.follows_skipped} skipped (unknown user)",
            f"messages: {self.messages_imported} imported, "
            f"{self.messages_existing} already present, "
            f"{self.messages_skipped} skipped (unknown author or invalid text or date)",
        ]


def _decode(raw: bytes) -> str:
    # Invalid UTF-8 becomes lone surrogates, which ``_storable`` then refuses:
    # the row is skipped instead of the whole read failing.
    return raw.decode("utf-8", "surrogateescape")


def open_legacy(path: Path) -> sqlite3.Connection:
    """Open read-only and check the schema, or explain what is wrong with the file."""
    if not path.exists():
        raise NotALegacyDatabase(f"{path}: no such file")
    if not path.is_file():
        raise NotALegacyDatabase(f"{path}: not a file")
    # A file: URI so that mode=ro applies; as_uri() percent-encodes '?', '#' and '%'.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.text_factory = _decode
    try:
        tables = {
            name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}
            for name in REQUIRED_COLUMNS
        }
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotALegacyDatabase(f"{path}: not a readable SQLite database ({exc})") from None
    problems = []
    for name, required in REQUIRED_COLUMNS.items():
        if not tables[name]:
            problems.append(f"no table '{name}'")
        elif missing := required - tables[name]:
            problems.append(f"table '{name}' has no column {', '.join(sorted(missing))}")
    if problems:
        conn.close()
        raise NotALegacyDatabase(f"{path}: not an ITU-MiniTwit database ({'; '.join(problems)})")
    return conn


async def import_legacy(path: Path) -> ImportReport:
    legacy = open_legacy(path)
    report = ImportReport()
    try:
        async with in_transaction():
            id_map = await _import_users(legacy, report)
            await _import_follows(legacy, id_map, report)
            await _import_messages(legacy, id_map, report)
    except _LegacyReadError as exc:
        # Raised inside the transaction, so everything written so far was rolled back.
        raise NotALegacyDatabase(
            f"{path}: reading the legacy database failed ({exc}); nothing was imported"
        ) from None
    finally:
        legacy.close()
    return report


def _read(legacy: sqlite3.Connection, sql: str) -> list[Any]:
    try:
        return legacy.execute(sql).fetchall()
    except sqlite3.Error as exc:
        raise _LegacyReadError(str(exc)) from None


def _chunks(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _storable(value: object, max_length: int | None = None, allow_empty: bool = False) -> bool:
    """Text the database stores unchanged: no NUL, valid Unicode, within the column."""
    if not isinstance(value, str) or (not value and not allow_empty) or "\x00" in value:
        return False
    if max_length is not None and len(value) > max_length:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _pub_date(value: object) -> int | None:
    """Unix seconds as stored, 0 for NULL, None when it is not a usable timestamp."""
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and BIGINT_MIN <= value <= BIGINT_MAX:
        return value
    return None


async def _user_ids() -> dict[str, int]:
    """Every username -> id, in one scan of the (small) user table.

    Not ``username IN (...)`` batches: run before and after the insert they are
    one prepared statement, whose plan made for the empty table then turns into
    a sequential scan per batch on PostgreSQL (minutes for 40,000 users).
    """
    rows = await User.all().values_list("username", "id")
    return {str(username): int(user_id) for username, user_id in rows}


async def _import_users(legacy: sqlite3.Connection, report: ImportReport) -> dict[int, int]:
    """Returns legacy user_id -> new id, for every legacy user now present."""
    rows = _read(
        legacy,
        "SELECT user_id, CAST(username AS TEXT), CAST(email AS TEXT), CAST(pw_hash AS TEXT)"
        " FROM user ORDER BY user_id",
    )
    existing = await _user_ids()
    new_users: list[User] = []
    seen: set[str] = set()
    for _legacy_id, username, email, pw_hash in rows:
        valid = (
            _storable(username, STORED_TEXT_MAX)
            and _storable(email, STORED_TEXT_MAX, allow_empty=True)
            and _storable(pw_hash, STORED_TEXT_MAX)
        )
        if not valid or username in seen:
            report.users_skipped += 1
            continue
        seen.add(username)
        if username in existing:
            report.users_existing += 1
            continue
        new_users.append(User(username=username, email=email, pw_hash=pw_hash))
    await User.bulk_create(new_users, batch_size=BATCH)
    report.users_imported = len(new_users)
    by_name = await _user_ids() if new_users else existing
    # A duplicate legacy username maps to the one account of that name, as the
    # legacy app (which looked users up by name) effectively treated it.
    return {
        legacy_id: by_name[username]
        for legacy_id, username, *_ in rows
        if username in seen and username in by_name
    }


async def _import_follows(
    legacy: sqlite3.Connection, id_map: dict[int, int], report: ImportReport
) -> None:
    pairs: set[tuple[int, int]] = set()
    for who, whom in _read(legacy, "SELECT who_id, whom_id FROM follower"):
        if who in id_map and whom in id_map:
            pairs.add((id_map[who], id_map[whom]))
        else:
            report.follows_skipped += 1
    present: set[tuple[int, int]] = set()
    for chunk in _chunks(sorted({who for who, _ in pairs})):
        rows = await Follower.filter(who_id__in=chunk).values_list("who_id", "whom_id")
        present.update((int(who), int(whom)) for who, whom in rows)
    new_pairs = sorted(pairs - present)
    # ignore_conflicts: a follow made concurrently by the live app is not an error.
    await Follower.bulk_create(
        [Follower(who_id=who, whom_id=whom) for who, whom in new_pairs],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    report.follows_imported = len(new_pairs)
    report.follows_existing = len(pairs) - len(new_pairs)


async def _import_messages(
    legacy: sqlite3.Connection, id_map: dict[int, int], report: ImportReport
) -> None:
    legacy_rows: list[tuple[MessageKey, bool]] = []
    for author, text, raw_date, flagged in _read(
        legacy,
        "SELECT author_id, CAST(text AS TEXT), pub_date, flagged FROM message ORDER BY message_id",
    ):
        pub_date = _pub_date(raw_date)
        if author not in id_map or pub_date is None or not _storable(text, allow_empty=True):
            report.messages_skipped += 1
            continue
        legacy_rows.append(((id_map[author], pub_date, text), bool(flagged)))

    present: Counter[tuple[MessageKey, bool]] = Counter()
    for chunk in _chunks(sorted({key[0] for key, _ in legacy_rows})):
        rows = await Message.filter(author_id__in=chunk).values_list(
            "author_id", "pub_date", "text", "flagged"
        )
        present.update(((int(a), int(p), str(t)), bool(f)) for a, p, t, f in rows)

    # Which legacy copies are already there: first those present with the same
    # flag, then (a message flagged since the last run) those with the other one.
    wanted = Counter(legacy_rows)
    same_flag = wanted & present
    other_flag: Counter[MessageKey] = Counter()
    for (key, _flagged), count in (present - same_flag).items():
        other_flag[key] += count

    to_create: list[Message] = []
    for key, flagged in legacy_rows:
        if same_flag[key, flagged] > 0:
            same_flag[key, flagged] -= 1
        elif other_flag[key] > 0:
            other_flag[key] -= 1
        else:
            author_id, pub_date, text = key
            to_create.append(
                Message(author_id=author_id, text=text, pub_date=pub_date, flagged=flagged)
            )
            continue
        report.messages_existing += 1
    # Oldest first; the sort is stable, so among equal pub_dates the insertion
    # order (the timelines' tie-breaker) stays the legacy message_id order.
    to_create.sort(key=lambda message: message.pub_date)
    await Message.bulk_create(to_create, batch_size=BATCH)
    report.messages_imported = len(to_create)
