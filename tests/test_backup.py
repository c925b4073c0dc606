"""deploy/backup: back up the real PostgreSQL here and restore it into a fresh database.

backup.sh runs the real pg_dump against a database the test creates, migrates
with the app's own migrations and fills; restore.sh runs the real pg_restore
into a second fresh database. The two must hold the same tables, the same row
counts, the same rows (an md5 over every row in order) and the same sequence
positions. The "bucket" is a local directory (BACKUP_DEST=file://...); the
s3:// destination is the same four storage functions over the AWS CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from app.db import migrate
from tests import postgres
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
BACKUP = ROOT / "deploy" / "backup" / "backup.sh"
RESTORE = ROOT / "deploy" / "backup" / "restore.sh"

pytestmark = pytest.mark.skipif(
    not (shutil.which("pg_dump") and shutil.which("pg_restore") and shutil.which("psql")),
    reason="pg_dump, pg_restore and psql are needed (Debian: postgresql-client)",
)

TRICKY_TEXTS = [
    "plain",
    'it\'s "quoted" and back\\slashed',
    "tab\there\nnewline\r\nand crlf",
    "unicode: æøå 日本語 🐦",
    "",  # not valid through the API, but the backup must not care
    "x" * 5000,
]


@pytest.fixture
def fresh_db(pg_admin_url: str) -> Iterator[list[str]]:
    """The databases a test made with ``new_db``; all dropped afterwards."""
    made: list[str] = []
    yield made
    for url in made:
        asyncio.run(postgres.drop_database(pg_admin_url, url))


def new_db(made: list[str], admin: str) -> str:
    """A new empty database on the test server, remembered for dropping."""
    url = asyncio.run(postgres.create_database(admin))
    made.append(url)
    return url


async def seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            'INSERT INTO "user" (username, email, pw_hash) VALUES ($1, $2, $3)',
            [(f"user{i}", f"user{i}@example.com", f"$argon2id$v=19$hash{i}") for i in range(40)],
        )
        await conn.executemany(
            "INSERT INTO follower (who_id, whom_id) VALUES ($1, $2)",
            [(who, whom) for who in range(1, 41) for whom in range(1, 41) if (who * whom) % 7 == 1],
        )
        messages = [
            (
                1 + i % 40,
                TRICKY_TEXTS[i % len(TRICKY_TEXTS)] + f" #{i}",
                1_700_000_000 + i,
                i % 9 == 0,
            )
            for i in range(600)
        ]
        await conn.executemany(
            "INSERT INTO message (author_id, text, pub_date, flagged) VALUES ($1, $2, $3, $4)",
            messages,
        )
        # A gap in the ids: the restored sequence must continue after the gap, not fill it.
        await conn.execute("DELETE FROM message WHERE id BETWEEN 100 AND 150")
        await conn.execute(
            "INSERT INTO latest (id, value) VALUES (1, 4242) "
            "ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value"
        )
    finally:
        await conn.close()


async def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Every table in the public schema: (row count, md5 of all its rows in a fixed order),
    and every sequence's position."""
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        result: dict[str, tuple[int, str]] = {}
        for table in tables:
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E'\\n' "
                f"ORDER BY t::text), '')) AS digest FROM \"{table}\" t"
            )
            assert row is not None
            result[f"table {table}"] = (int(row["n"]), str(row["digest"]))
        for seq in await conn.fetch(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
        ):
            result[f"sequence {seq['sequencename']}"] = (int(seq["last_value"] or 0), "")
        return result
    finally:
        await conn.close()


def run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stamp(when: datetime) -> str:
    return f"minitwit-{when.strftime('%Y%m%dT%H%M%SZ')}.dump"


def test_backup_then_restore_gives_the_same_data(
    fresh_db: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    source = new_db(fresh_db, pg_admin_url)
    asyncio.run(migrate(make_settings(source), progress=lambda _: None))
    asyncio.run(seed(source))
    bucket = tmp_path / "bucket"
    env = {"BACKUP_DEST": f"file://{bucket}", "BACKUP_RETENTION_DAYS": "14"}

    made = run(BACKUP, env={**env, "DATABASE_URL": source})
    assert made.returncode == 0, made.stderr
    name = made.stdout.strip().splitlines()[-1]
    assert sorted(p.name for p in bucket.iterdir()) == [name, f"{name}.sha256"]
    # The sidecar is a real checksum of the dump.
    digest = hashlib.sha256((bucket / name).read_bytes()).hexdigest()
    assert (bucket / f"{name}.sha256").read_text().split() == [digest, name]
    # The dump is pg_dump's custom format, not plain SQL.
    assert (bucket / name).read_bytes()[:5] == b"PGDMP"

    target = new_db(fresh_db, pg_admin_url)
    restored = run(RESTORE, "latest", target, env=env)
    assert restored.returncode == 0, restored.stderr

    before, after = asyncio.run(snapshot(source)), asyncio.run(snapshot(target))
    assert before["table message"][0] == 600 - 51
    assert before["table user"][0] == 40
    assert before["table latest"][0] == 1
    assert after == before

    # The restored database is usable by the app: new ids continue after the old ones.
    async def insert_message() -> int:
        conn = await asyncpg.connect(target)
        try:
            return int(
                await conn.fetchval(
                    "INSERT INTO message (author_id, text, pub_date, flagged) "
                    "VALUES (1, 'after restore', 1800000000, false) RETURNING id"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(insert_message()) == 601


def test_restore_refuses_a_database_that_has_tables(
    fresh_db: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    source = new_db(fresh_db, pg_admin_url)
    asyncio.run(migrate(make_settings(source), progress=lambda _: None))
    asyncio.run(seed(source))
    env = {"BACKUP_DEST": f"file://{tmp_path / 'bucket'}"}
    assert run(BACKUP, env={**env, "DATABASE_URL": source}).returncode == 0

    refused = run(RESTORE, "latest", source, env=env)
    assert refused.returncode != 0
    assert "already has" in refused.stderr
    # RESTORE_FORCE replaces the objects the dump holds, in one transaction.
    asyncio.run(_execute(source, "DELETE FROM follower"))
    forced = run(RESTORE, "latest", source, env={**env, "RESTORE_FORCE": "1"})
    assert forced.returncode == 0, forced.stderr
    assert asyncio.run(snapshot(source))["table follower"][0] > 0


def test_restore_refuses_a_dump_that_does_not_match_its_checksum(
    fresh_db: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    source = new_db(fresh_db, pg_admin_url)
    asyncio.run(migrate(make_settings(source), progress=lambda _: None))
    bucket = tmp_path / "bucket"
    env = {"BACKUP_DEST": f"file://{bucket}"}
    made = run(BACKUP, env={**env, "DATABASE_URL": source})
    assert made.returncode == 0, made.stderr
    name = made.stdout.strip().splitlines()[-1]
    dump = bucket / name
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))

    target = new_db(fresh_db, pg_admin_url)
    refused = run(RESTORE, name, target, env=env)
    assert refused.returncode != 0
    assert "checksum" in refused.stderr
    assert asyncio.run(snapshot(target)) == {}


def test_backup_prunes_only_its_own_dumps_past_retention(
    fresh_db: list[str], pg_admin_url: str, tmp_path: Path
) -> None:
    source = new_db(fresh_db, pg_admin_url)
    asyncio.run(migrate(make_settings(source), progress=lambda _: None))
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    now = datetime.now(UTC)
    old = [stamp(now - timedelta(days=days)) for days in (15, 40)]
    kept = [stamp(now - timedelta(days=days)) for days in (1, 13)]
    others = [
        "notes.txt",
        "minitwit-latest.dump",  # not a timestamp
        "other-20200101T000000Z.dump",  # another prefix
        stamp(now - timedelta(days=400)) + ".bak",  # not exactly one of ours
    ]
    for name in old + kept:
        (bucket / name).write_bytes(b"PGDMP old")
        (bucket / f"{name}.sha256").write_text("0  x\n")
    for name in others:
        (bucket / name).write_text("keep me")

    made = run(
        BACKUP,
        env={
            "BACKUP_DEST": f"file://{bucket}",
            "BACKUP_RETENTION_DAYS": "14",
            "DATABASE_URL": source,
        },
    )
    assert made.returncode == 0, made.stderr
    new = made.stdout.strip().splitlines()[-1]

    expected = {*kept, *(f"{n}.sha256" for n in kept), *others, new, f"{new}.sha256"}
    assert {p.name for p in bucket.iterdir()} == expected
    for name in old:
        assert f"pruning {name}" in made.stderr

    listed = run(RESTORE, "list", env={"BACKUP_DEST": f"file://{bucket}"})
    assert listed.stdout.split() == [*reversed(kept), new]


def test_backup_fails_loudly_when_the_database_is_unreachable(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    dead = f"postgres://postgres@127.0.0.1:{postgres.free_port()}/nowhere"
    failed = run(BACKUP, env={"BACKUP_DEST": f"file://{bucket}", "DATABASE_URL": dead})
    assert failed.returncode != 0
    assert not bucket.exists() or not any(bucket.iterdir())


def test_backup_rejects_a_destination_it_does_not_know(tmp_path: Path) -> None:
    failed = run(
        BACKUP,
        env={"BACKUP_DEST": "ftp://example.invalid/x", "DATABASE_URL": "postgres://x@y/z"},
    )
    assert failed.returncode != 0
    assert "BACKUP_DEST must be" in failed.stderr


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
