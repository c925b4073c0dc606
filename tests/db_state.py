"""Read what the app wrote, straight from the database (sqlite3 or asyncpg), not through the app.

Shared by the bad-input, concurrency and OpenAPI tests: they compare the rows
before and after a request to prove a refused request changed nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import asyncpg

Row = tuple[Any, ...]

QUERIES = {
    "users": 'SELECT id, username, email, pw_hash FROM "user" ORDER BY id',
    "follows": "SELECT id, who_id, whom_id FROM follower ORDER BY id",
    "messages": "SELECT id, author_id, text, pub_date, flagged FROM message ORDER BY id",
    "latest": "SELECT id, value FROM latest ORDER BY id",
}


@dataclass(frozen=True)
class DbState:
    """Every row of the four tables the app owns."""

    users: tuple[Row, ...]
    follows: tuple[Row, ...]
    messages: tuple[Row, ...]
    latest_rows: tuple[Row, ...]

    @property
    def latest(self) -> int | None:
        """The recorded ``latest`` (the value of row 1), None when the row is missing."""
        values = [value for row_id, value in self.latest_rows if row_id == 1]
        return int(values[0]) if values else None

    def counts(self) -> dict[str, int]:
        return {
            "user": len(self.users),
            "follower": len(self.follows),
            "message": len(self.messages),
        }

    def without_latest(self) -> tuple[tuple[Row, ...], ...]:
        return (self.users, self.follows, self.messages)


async def fetch(database_url: str, sql: str, *args: Any) -> list[Row]:
    """Run one read-only query on the app's database and return plain tuples."""
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite://"), timeout=10)
        try:
            return [tuple(row) for row in conn.execute(sql.replace("$", "?"), args)]
        finally:
            conn.close()
    pg = await asyncpg.connect(database_url)
    try:
        return [tuple(row) for row in await pg.fetch(sql, *args)]
    finally:
        await pg.close()


async def execute_many(database_url: str, sql: str, rows: list[Row]) -> None:
    """Write rows directly, for setups the API would take long to build."""
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite://"), timeout=10)
        try:
            with conn:
                conn.executemany(sql.replace("$", "?"), rows)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(database_url)
    try:
        await pg.executemany(sql, rows)
    finally:
        await pg.close()


def _normalise(table: str, rows: list[Row]) -> tuple[Row, ...]:
    if table == "messages":  # SQLite stores the flag as 0/1, PostgreSQL as a boolean
        return tuple((*row[:4], bool(row[4])) for row in rows)
    return tuple(rows)


async def read_state(database_url: str) -> DbState:
    rows = {table: await fetch(database_url, sql) for table, sql in QUERIES.items()}
    return DbState(
        users=_normalise("users", rows["users"]),
        follows=_normalise("follows", rows["follows"]),
        messages=_normalise("messages", rows["messages"]),
        latest_rows=_normalise("latest", rows["latest"]),
    )


async def read_latest(database_url: str) -> int | None:
    return (await read_state(database_url)).latest


async def follow_pairs(database_url: str) -> list[tuple[str, str]]:
    """Every follower row as (who, whom) usernames, duplicates kept."""
    rows = await fetch(
        database_url,
        'SELECT a.username, b.username FROM follower f JOIN "user" a ON a.id = f.who_id '
        'JOIN "user" b ON b.id = f.whom_id ORDER BY f.id',
    )
    return [(str(who), str(whom)) for who, whom in rows]
