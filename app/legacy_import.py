"""Import a legacy ITU-MiniTwit SQLite database (tables ``user``, ``follower``, ``message``).

Idempotent by content, so it can be re-run after a partial migration window:
users are matched by username, follows by the unique pair, and messages by
(author, pub_date, text) counted as a multiset, so a legacy database that
really holds the same message twice still imports both copies, once. The
whole import is one transaction: it lands completely or not at all.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tortoise.transactions import in_transaction

from app.models import Follower, Message, User

REQUIRED_COLUMNS = {
    "user": {"user_id", "username", "email", "pw_hash"},
    "follower": {"who_id", "whom_id"},
    "message": {"message_id", "author_id", "text", "pub_date", "flagged"},
}
BATCH = 1000


class NotALegacyDatabase(ValueError):
    """The file is not an ITU-MiniTwit SQLite database."""


@dataclass
class ImportReport:
    users_imported: int = 0
    users_existing: int = 0
    users_skipped: int = 0
    follows_imported: int = 0
    follows_existing: int = 0
    messages_imported: int = 0
    messages_existing: int = 0

    def lines(self) -> list[str]:
        return [
            f"users: {self.users_imported} imported, {self.users_existing} already present, "
            f"{self.users_skipped} skipped (invalid)",
            f"follows: {self.follows_imported} imported, {self.follows_existing} already present",
            f"messages: {self.messages_imported} imported, "
            f"{self.messages_existing} already present",
        ]


def open_legacy(path: Path) -> sqlite3.Connection:
    """Open read-only and check the schema, or explain what is wrong with the file."""
    if not path.is_file():
        raise NotALegacyDatabase(f"{path}: no such file")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {
            name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}
            for name in REQUIRED_COLUMNS
        }
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise NotALegacyDatabase(f"{path}: not an SQLite database ({exc})") from None
    for name, required in REQUIRED_COLUMNS.items():
        missing = required - tables[name]
        if missing:
            conn.close()
            what = "table" if not tables[name] else f"columns {', '.join(sorted(missing))} of"
            raise NotALegacyDatabase(
                f"{path}: not an ITU-MiniTwit database (missing {what} '{name}')"
            )
    return conn


async def import_legacy(path: Path) -> ImportReport:
    legacy = open_legacy(path)
    report = ImportReport()
    try:
        async with in_transaction():
            id_map = await _import_users(legacy, report)
            await _import_follows(legacy, id_map, report)
            await _import_messages(legacy, id_map, report)
    finally:
        legacy.close()
    return report


def _valid_text(value: object, max_length: int) -> bool:
    if not isinstance(value, str) or not value or len(value) > max_length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _import_users(legacy: sqlite3.Connection, report: ImportReport) -> dict[int, int]:
    """Returns legacy user_id -> new id, for every user now present."""
    rows = legacy.execute("SELECT user_id, username, email, pw_hash FROM user").fetchall()
    usernames = [row[1] for row in rows if isinstance(row[1], str)]
    existing: dict[str, int] = {}
    for start in range(0, len(usernames), BATCH):
        chunk = usernames[start : start + BATCH]
        for username, user_id in await User.filter(username__in=chunk).values_list(
            "username", "id"
        ):
            existing[username] = user_id
    new_users: list[tuple[int, User]] = []
    seen: set[str] = set()
    for legacy_id, username, email, pw_hash in rows:
        valid = (
            _valid_text(username, 255)
            and isinstance(email, str)
            and len(email) <= 255
            and _valid_text(pw_hash, 255)
        )
        if not valid or username in seen:
            report.users_skipped += 1
            continue
        seen.add(username)
        if username in existing:
            report.users_existing += 1
            continue
        new_users.append((legacy_id, User(username=username, email=email, pw_hash=pw_hash)))
    await User.bulk_create([user for _, user in new_users], batch_size=BATCH)
    report.users_imported = len(new_users)
    created = (
        {
            name: user_id
            for name, user_id in await User.filter(
                username__in=[u.username for _, u in new_users]
            ).values_list("username", "id")
        }
        if new_users
        else {}
    )
    by_name = {**existing, **created}
    return {
        legacy_id: by_name[username]
        for legacy_id, username, *_ in rows
        if isinstance(username, str) and username in by_name
    }


async def _import_follows(
    legacy: sqlite3.Connection, id_map: dict[int, int], report: ImportReport
) -> None:
    pairs = {
        (id_map[who], id_map[whom])
        for who, whom in legacy.execute("SELECT who_id, whom_id FROM follower")
        if who in id_map and whom in id_map
    }
    before = await Follower.all().count()
    await Follower.bulk_create(
        [Follower(who_id=who, whom_id=whom) for who, whom in sorted(pairs)],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    report.follows_imported = await Follower.all().count() - before
    report.follows_existing = len(pairs) - report.follows_imported


async def _import_messages(
    legacy: sqlite3.Connection, id_map: dict[int, int], report: ImportReport
) -> None:
    wanted: Counter[tuple[int, int, str]] = Counter()
    flagged_keys: set[tuple[int, int, str]] = set()
    for author, text, pub_date, flagged in legacy.execute(
        "SELECT author_id, text, pub_date, flagged FROM message ORDER BY message_id"
    ):
        if author not in id_map or not isinstance(text, str) or not _valid_text(text or "x", 10**6):
            continue
        key = (id_map[author], int(pub_date or 0), text)
        wanted[key] += 1
        if flagged:
            flagged_keys.add(key)
    authors = sorted({key[0] for key in wanted})
    present: Counter[tuple[int, int, str]] = Counter()
    for start in range(0, len(authors), BATCH):
        rows = await Message.filter(author_id__in=authors[start : start + BATCH]).values_list(
            "author_id", "pub_date", "text"
        )
        present.update((int(a), int(p), str(t)) for a, p, t in rows)
    to_create: list[Message] = []
    for key, count in wanted.items():
        already = min(count, present[key])
        report.messages_existing += already
        for _ in range(count - already):
            author_id, pub_date, text = key
            to_create.append(
                Message(
                    author_id=author_id, text=text, pub_date=pub_date, flagged=key in flagged_keys
                )
            )
    # Oldest first, so insertion order (the tie-breaker) follows the legacy order.
    to_create.sort(key=lambda message: message.pub_date)
    await Message.bulk_create(to_create, batch_size=BATCH)
    report.messages_imported = len(to_create)
