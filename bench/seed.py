"""Seed a PostgreSQL database for the read benchmarks, in bulk.

    .venv/bin/python -m bench.seed [--drop] [--database-url URL]

Creates the database (default ``minitwit_bench`` on 127.0.0.1:5432, or
``$MINITWIT_BENCH_DATABASE_URL``), applies the app's migrations, then loads
10,000 users, 1,000,000 messages and 100,000 follow pairs with COPY and runs
VACUUM (ANALYZE). An existing database that already holds exactly that data
is reused as it is; ``--drop`` recreates it.

The shape is meant to look like a real MiniTwit, not like a uniform grid:

- usernames are "First Last" pairs (with spaces, like the simulator's), and
  every user has the same argon2id hash of ``BENCH_PASSWORD``. One hash is
  computed once and shared: that password is for benchmarking only, and a
  database seeded here must never be used for anything else.
- message authors follow a Zipf-like law (weight 1/rank^1.0 over a shuffled
  ranking), so a few users wrote tens of thousands of messages and most wrote
  a handful; ids and pub_dates increase together (about a year of history,
  Poisson arrivals, so some share a second); about 1% of messages are flagged.
- follows: the followed user is drawn by the same popularity ranking (the
  prolific are the followed), the follower by a milder skew, so most users
  follow a few people and a few follow hundreds; pairs are unique, no one
  follows themself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from app.config import Settings
from app.db import migrate
from app.passwords import hash_password_sync

DEFAULT_URL = os.environ.get(
    "MINITWIT_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/minitwit_bench"
)
# Every seeded user's password. For benchmarking only: all seeded users share it.
BENCH_PASSWORD = "bench-only-password"
# 2025-01-01T00:00:00Z: the first seeded message; the last is about a year later.
FIRST_PUB_DATE = 1_735_689_600
HISTORY_SECONDS = 365 * 24 * 3600
FLAGGED_RATE = 0.01
MESSAGE_BATCH = 100_000


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words(
    "Ada Alan Alice Amir Ana Anders Anna Aria Ben Bo Carla Chen Clara Dan Dana Eli Ella Emil "
    "Emma Eva Felix Freja Gustav Hana Ida Ines Ivan Jakob Jana Jonas Julia Kai Karl Kira Lars "
    "Lea Leo Lina Liv Luca Maja Marco Maria Mats Mia Mikkel Nadia Nils Noah Nora Olga Omar "
    "Oscar Paula Petra Rasmus Rosa Sara Sofia Tariq Theo Tove Ulla Vera Viktor Yara Zoe"
)
LAST_NAMES = _words(
    "Andersen Berg Bianchi Costa Dahl Eriksen Fischer Garcia Hansen Holm Ito Jensen Johansson "
    "Kaur Khan Kim Kowalski Larsen Lund Madsen Meyer Moreau Mueller Nielsen Novak Olsen "
    "Pedersen Petrov Quinn Rasmussen Rossi Schmidt Silva Smith Sorensen Tanaka Thomsen Varga "
    "Wang Weber Wilson Yilmaz Zhang"
)
WORDS = _words(
    "the a of to and in is it that for on with as was at by this be from or have not are but "
    "an they which one you were all we her she there been if more when will would who so no "
    "coffee code deploy server database index query latency weekend weather train bike rain "
    "sun music book film lunch dinner team meeting release bug fix test green red build ship "
    "monitor alert dashboard graph metric log trace queue cache disk memory cpu network cloud "
    "python rust java go postgres sqlite docker linux kernel patch review merge branch commit "
    "today tomorrow yesterday morning evening night again finally really maybe never always "
    "happy tired busy late early great small big new old fast slow quiet loud simple hard"
)


@dataclass(frozen=True)
class Shape:
    users: int = 10_000
    messages: int = 1_000_000
    follows: int = 100_000
    seed: int = 20251124
    author_skew: float = 1.0  # Zipf exponent: who writes (and who is followed)
    follower_skew: float = 0.5  # Zipf exponent: who follows


def username(user_id: int) -> str:
    """Deterministic, unique, human-looking: "Ana Silva", later "Ana Silva 2", ..."""
    index = user_id - 1
    pairs = len(FIRST_NAMES) * len(LAST_NAMES)
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[(index // len(FIRST_NAMES)) % len(LAST_NAMES)]
    round_ = index // pairs
    return f"{first} {last}" if round_ == 0 else f"{first} {last} {round_ + 1}"


def _zipf_cum_weights(n: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / rank**exponent for rank in range(1, n + 1)))


def _ranking(n_users: int, rng: random.Random) -> list[int]:
    """User ids in popularity order (most popular first), shuffled so id says nothing."""
    ids = list(range(1, n_users + 1))
    rng.shuffle(ids)
    return ids


def user_records(n_users: int, pw_hash: str) -> list[tuple[int, str, str, str]]:
    records = []
    for user_id in range(1, n_users + 1):
        name = username(user_id)
        email = name.lower().replace(" ", ".") + "@example.com"
        records.append((user_id, name, email, pw_hash))
    return records


def follow_records(shape: Shape, rng: random.Random, popular: Sequence[int]) -> list[tuple]:
    """``shape.follows`` unique (id, who_id, whom_id) pairs, whom skewed to the popular."""
    n = shape.users
    if shape.follows > n * (n - 1):
        raise ValueError("more follows than distinct pairs of users")
    followed_weights = _zipf_cum_weights(n, shape.author_skew)
    followers = _ranking(n, rng)
    follower_weights = _zipf_cum_weights(n, shape.follower_skew)
    pairs: dict[tuple[int, int], None] = {}  # insertion-ordered set
    while len(pairs) < shape.follows:
        want = shape.follows - len(pairs)
        whos = rng.choices(followers, cum_weights=follower_weights, k=want)
        whoms = rng.choices(popular, cum_weights=followed_weights, k=want)
        for pair in zip(whos, whoms, strict=True):
            if pair[0] != pair[1]:
                pairs.setdefault(pair)
    return [(i, who, whom) for i, (who, whom) in enumerate(pairs, start=1)]


def message_batches(
    shape: Shape, rng: random.Random, popular: Sequence[int], batch: int = MESSAGE_BATCH
) -> Iterator[list[tuple[int, int, str, int, bool]]]:
    """(id, author_id, text, pub_date, flagged) in id order; pub_date never decreases."""
    weights = _zipf_cum_weights(shape.users, shape.author_skew)
    # Posts arrive as a Poisson process: exponential gaps, floored to whole seconds,
    # so some messages share a second (the id breaks the tie, as in production).
    rate = max(shape.messages, 1) / HISTORY_SECONDS
    elapsed = 0.0
    for start in range(0, shape.messages, batch):
        count = min(batch, shape.messages - start)
        authors = rng.choices(popular, cum_weights=weights, k=count)
        records = []
        for offset, author in enumerate(authors):
            elapsed += rng.expovariate(rate)
            words = rng.choices(WORDS, k=rng.randint(3, 30))
            text = " ".join(words).capitalize() + "."
            flagged = rng.random() < FLAGGED_RATE
            records.append(
                (start + offset + 1, author, text, FIRST_PUB_DATE + int(elapsed), flagged)
            )
        yield records


async def seed_tables(
    conn: asyncpg.Connection,
    shape: Shape,
    pw_hash: str,
    progress: Callable[[str], None] = print,
) -> None:
    """COPY the whole shape into the (empty, migrated) tables, then fix the id sequences."""
    rng = random.Random(shape.seed)
    popular = _ranking(shape.users, rng)

    started = time.perf_counter()
    await conn.copy_records_to_table(
        "user", records=user_records(shape.users, pw_hash), columns=USER_COLUMNS
    )
    progress(f"users: {shape.users:,} in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    follows = follow_records(shape, rng, popular)
    await conn.copy_records_to_table("follower", records=follows, columns=FOLLOWER_COLUMNS)
    progress(f"follows: {len(follows):,} in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    done = 0
    for records in message_batches(shape, rng, popular):
        await conn.copy_records_to_table("message", records=records, columns=MESSAGE_COLUMNS)
        done += len(records)
        if done % (MESSAGE_BATCH * 5) == 0 or done == shape.messages:
            progress(f"messages: {done:,} in {time.perf_counter() - started:.1f} s")

    for table in ("user", "follower", "message"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f'COALESCE((SELECT max(id) FROM "{table}"), 0) + 1, false)'
        )


USER_COLUMNS = ("id", "username", "email", "pw_hash")
FOLLOWER_COLUMNS = ("id", "who_id", "whom_id")
MESSAGE_COLUMNS = ("id", "author_id", "text", "pub_date", "flagged")


def admin_url(url: str) -> tuple[str, str]:
    """The maintenance database URL on the same server, and the target database's name."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(f"no database name in {url!r}")
    return urlunsplit(parts._replace(path="/postgres")), name


async def ensure_database(url: str, drop: bool) -> None:
    admin, name = admin_url(url)
    conn = await asyncpg.connect(admin)
    try:
        if drop:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    finally:
        await conn.close()


async def counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        'SELECT (SELECT count(*) FROM "user"), (SELECT count(*) FROM message), '
        "(SELECT count(*) FROM follower)"
    )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def run(url: str, shape: Shape, drop: bool) -> int:
    total = time.perf_counter()
    await ensure_database(url, drop)
    settings = Settings(database_url=url, db_timeout=600.0)
    await migrate(settings, progress=lambda line: print(f"migration {line}"))

    conn = await asyncpg.connect(url)
    try:
        existing = await counts(conn)
        if existing == (shape.users, shape.messages, shape.follows):
            print(
                f"reusing {url}: {existing[0]:,} users, {existing[1]:,} messages, "
                f"{existing[2]:,} follows already there (--drop to recreate)"
            )
            return 0
        if existing != (0, 0, 0):
            print(
                f"{url} already holds {existing[0]:,} users, {existing[1]:,} messages, "
                f"{existing[2]:,} follows, not the requested shape: use --drop to recreate it",
                file=sys.stderr,
            )
            return 2

        started = time.perf_counter()
        pw_hash = hash_password_sync(BENCH_PASSWORD)  # once; every seeded user shares it
        print(f"argon2id hash of the shared bench password: {time.perf_counter() - started:.2f} s")
        await seed_tables(conn, shape, pw_hash)

        started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(f"VACUUM (ANALYZE): {time.perf_counter() - started:.1f} s")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        users, messages, follows = await counts(conn)
    finally:
        await conn.close()
    print(
        f"seeded {users:,} users, {messages:,} messages, {follows:,} follows "
        f"in {time.perf_counter() - total:.1f} s total; database size {size}"
    )
    print(f"every seeded user's password is {BENCH_PASSWORD!r} (benchmarking only)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed",
        description="Create and bulk-seed a PostgreSQL database for bench.reads.",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_URL,
        help="target database (created if missing); default $MINITWIT_BENCH_DATABASE_URL "
        "or %(default)s",
    )
    parser.add_argument("--drop", action="store_true", help="drop and recreate the database")
    parser.add_argument("--users", type=int, default=Shape.users)
    parser.add_argument("--messages", type=int, default=Shape.messages)
    parser.add_argument("--follows", type=int, default=Shape.follows)
    parser.add_argument("--seed", type=int, default=Shape.seed, help="random seed")
    args = parser.parse_args(argv)
    shape = Shape(users=args.users, messages=args.messages, follows=args.follows, seed=args.seed)
    return asyncio.run(run(args.database_url, shape, args.drop))


if __name__ == "__main__":
    sys.exit(main())
