"""``minitwit import-sqlite``: a legacy ITU-MiniTwit database lands whole, once, on both backends.

The legacy files are built here with the course's own schema.sql and real
werkzeug hashes, then imported in-process (``import_legacy``) or through the
real command line (``python -m app.cli import-sqlite``). What landed is read
back through the ORM and through the web UI: timelines, and logging in with the
old password.
"""

from __future__ import annotations

import asyncio
import functools
import html
import os
import random
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from werkzeug.security import generate_password_hash

from app import db
from app.config import Settings
from app.legacy_import import ImportReport, import_legacy
from app.models import Follower, Message, User
from app.services import follows, messages, users
from tests.conftest import ROOT

pytestmark = pytest.mark.asyncio

# The course's schema.sql, verbatim.
LEGACY_SCHEMA = """
drop table if exists user;
create table user (user_id integer primary key autoincrement, username string not null, email string not null, pw_hash string not null);
drop table if exists follower;
create table follower (who_id integer, whom_id integer);
drop table if exists message;
create table message (message_id integer primary key autoincrement, author_id integer not null, text string not null, pub_date integer, flagged integer);
"""  # noqa: E501


@functools.cache
def pbkdf2(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256")


@functools.cache
def scrypt(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


T = 1_300_000_000
ALICE_PW = "alice's old password"
BJORN = "Bjørn Ødegård"
BJORN_PW = 'pässwörd 🔑 "quoted" \\ back'
ROGER = "Roger Histand"
ROGER_PW = "roger"
# The schema's "string" columns have NUMERIC affinity: this username and the
# message "31415926" are stored as INTEGERs in the legacy file.
NUMERIC = "2024"
NUMERIC_PW = "2024 was a year"
RTL = "שלום 🎉"

Row = tuple[Any, ...]


def legacy_users() -> list[Row]:
    return [
        (1, "alice", "alice@example.com", pbkdf2(ALICE_PW)),
        (2, BJORN, "bjørn@example.com", scrypt(BJORN_PW)),
        (3, ROGER, "roger@example.com", pbkdf2(ROGER_PW)),
        (4, NUMERIC, "numbers@example.com", scrypt(NUMERIC_PW)),
        (5, RTL, "rtl@example.com", pbkdf2(ROGER_PW)),
    ]


LEGACY_FOLLOWS: list[Row] = [
    (1, 2),
    (2, 1),
    (1, 3),
    (1, 2),  # the same pair twice: the legacy table has no constraint
    (4, 1),
    (1, 99),  # dangling: no user 99
    (98, 2),  # dangling: no user 98
]

# (message_id, author_id, text, pub_date, flagged)
LEGACY_MESSAGES: list[Row] = [
    (1, 1, "hello from alice", T, 0),
    (2, 2, "hej fra Bjørn 🎉 — עברית <b>bold</b>", T + 100, 0),
    (3, 2, "flagged spam", T + 200, 1),
    (4, 3, "same text twice", T + 300, 0),
    (5, 3, "in between", T + 300, 0),
    (6, 3, "same text twice", T + 300, 0),  # identical to message 4
    (7, 3, "twin", T + 400, 0),
    (8, 3, "twin", T + 400, 1),  # identical to message 7 but flagged
    (9, 4, "31415926", T + 500, 0),
    (10, 1, "undated", None, 0),
    (11, 1, "flag unknown", T + 600, None),
    (12, 5, "מה נשמע? 👋", T + 700, 0),
    (13, 99, "by a user who is gone", T + 800, 0),  # dangling author
]

EXPECTED_USERS = {(name, email, pw_hash) for _, name, email, pw_hash in legacy_users()}
EXPECTED_FOLLOWS = sorted(
    [("alice", BJORN), (BJORN, "alice"), ("alice", ROGER), (NUMERIC, "alice")]
)
EXPECTED_MESSAGES = sorted(
    [
        ("alice", "hello from alice", T, False),
        (BJORN, "hej fra Bjørn 🎉 — עברית <b>bold</b>", T + 100, False),
        (BJORN, "flagged spam", T + 200, True),
        (ROGER, "same text twice", T + 300, False),
        (ROGER, "in between", T + 300, False),
        (ROGER, "same text twice", T + 300, False),
        (ROGER, "twin", T + 400, False),
        (ROGER, "twin", T + 400, True),
        (NUMERIC, "31415926", T + 500, False),
        ("alice", "undated", 0, False),  # a NULL pub_date becomes the epoch
        ("alice", "flag unknown", T + 600, False),  # a NULL flagged is not flagged
        (RTL, "מה נשמע? 👋", T + 700, False),
    ]
)
FIRST_REPORT = ImportReport(
    users_imported=5,
    follows_imported=4,
    follows_skipped=2,
    messages_imported=12,
    messages_skipped=1,
)
SECOND_REPORT = ImportReport(
    users_existing=5,
    follows_existing=4,
    follows_skipped=2,
    messages_existing=12,
    messages_skipped=1,
)
# Newest first, ties by insertion: the legacy order (message_id) is kept.
PUBLIC_TIMELINE = [
    "מה נשמע? 👋",
    "flag unknown",
    "31415926",
    "twin",
    "same text twice",
    "in between",
    "same text twice",
    "hej fra Bjørn 🎉 — עברית <b>bold</b>",
    "hello from alice",
    "undated",
]


def build_legacy(
    path: Path,
    users_rows: list[Row] | None = None,
    follow_rows: list[Row] | None = None,
    message_rows: list[Row] | None = None,
) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(LEGACY_SCHEMA)
        conn.executemany(
            "insert into user (user_id, username, email, pw_hash) values (?, ?, ?, ?)",
            legacy_users() if users_rows is None else users_rows,
        )
        conn.executemany(
            "insert into follower (who_id, whom_id) values (?, ?)",
            LEGACY_FOLLOWS if follow_rows is None else follow_rows,
        )
        conn.executemany(
            "insert into message (message_id, author_id, text, pub_date, flagged)"
            " values (?, ?, ?, ?, ?)",
            LEGACY_MESSAGES if message_rows is None else message_rows,
        )
    conn.close()
    return path


@pytest.fixture
def legacy_path(tmp_path: Path) -> Path:
    path = build_legacy(tmp_path / "minitwit.db")
    conn = sqlite3.connect(path)
    # The premise of the numeric cases: the legacy schema really stored integers.
    assert conn.execute("select typeof(username) from user where user_id = 4").fetchone() == (
        "integer",
    )
    assert conn.execute("select typeof(text) from message where message_id = 9").fetchone() == (
        "integer",
    )
    conn.close()
    return path


@pytest.fixture
async def orm(settings: Settings) -> AsyncIterator[Settings]:
    """The ORM open on the test database (shared with ``web_client`` when both are used)."""
    await db.connect(settings)
    yield settings
    await db.close()


async def stored_users() -> set[tuple[str, str, str]]:
    rows = await User.all().values_list("username", "email", "pw_hash")
    return {(str(name), str(email), str(pw_hash)) for name, email, pw_hash in rows}


async def stored_follows() -> list[tuple[str, str]]:
    rows = await Follower.all().values_list("who__username", "whom__username")
    return sorted((str(who), str(whom)) for who, whom in rows)


async def stored_messages() -> list[tuple[str, str, int, bool]]:
    rows = await Message.all().values_list("author__username", "text", "pub_date", "flagged")
    return sorted((str(a), str(t), int(p), bool(f)) for a, t, p, f in rows)


async def snapshot() -> tuple[Any, ...]:
    """Every row the app owns, ids included, so that any change shows."""
    return (
        sorted(await User.all().values_list("id", "username", "email", "pw_hash")),
        sorted(await Follower.all().values_list("id", "who_id", "whom_id")),
        sorted(await Message.all().values_list("id", "author_id", "text", "pub_date", "flagged")),
    )


async def stored_hash(username: str) -> str:
    return str((await User.get(username=username)).pw_hash)


def run_cli(database_url: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "MINITWIT_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "import-sqlite", str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a guard against a hang, not a performance claim
    )


async def cli(database_url: str, path: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, database_url, path)


def timeline_texts(page: str) -> list[str]:
    """The message texts of a rendered timeline, in page order."""
    items = re.findall(r"</a></strong>\s*(.*?)\s*<small>", page, flags=re.DOTALL)
    return [html.unescape(item) for item in items]


async def page_of(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, path
    return await response.get_data(as_text=True)


async def log_in(client: Client, username: str, password: str) -> bool:
    response = await client.post("/login", form={"username": username, "password": password})
    if response.status_code == 302:
        assert response.headers["Location"] == "/"
        assert "You were logged in" in await page_of(client, "/")
        return True
    assert response.status_code == 200
    assert "Invalid password" in await response.get_data(as_text=True)
    return False


async def log_out(client: Client) -> None:
    assert (await client.get("/logout")).status_code == 302


# -- what lands --------------------------------------------------------------------


async def test_import_lands_users_follows_and_messages(orm: Settings, legacy_path: Path) -> None:
    report = await import_legacy(legacy_path)

    assert report == FIRST_REPORT
    assert report.lines() == [
        "users: 5 imported, 0 already present, 0 skipped (invalid or duplicate username)",
        "follows: 4 imported, 0 already present, 2 skipped (unknown user)",
        "messages: 12 imported, 0 already present, "
        "1 skipped (unknown author or invalid text or date)",
    ]
    # The password hashes are the legacy ones, byte for byte.
    assert await stored_users() == EXPECTED_USERS
    assert await stored_follows() == EXPECTED_FOLLOWS
    assert await stored_messages() == EXPECTED_MESSAGES


async def test_identical_messages_keep_their_legacy_order(orm: Settings, legacy_path: Path) -> None:
    await import_legacy(legacy_path)
    roger = await users.get(ROGER)
    posts = await messages.by_author(int(roger.id), 100)
    # Messages 4, 5 and 6 share a pub_date: newest first means 6, 5, 4.
    assert [post.text for post in posts] == [
        "twin",
        "same text twice",
        "in between",
        "same text twice",
    ]


async def test_flagged_messages_stay_off_the_timelines(
    orm: Settings, web_client: Client, legacy_path: Path
) -> None:
    await import_legacy(legacy_path)

    assert timeline_texts(await page_of(web_client, "/public")) == PUBLIC_TIMELINE
    bjorn_page = timeline_texts(await page_of(web_client, "/Bj%C3%B8rn%20%C3%98deg%C3%A5rd"))
    assert bjorn_page == ["hej fra Bjørn 🎉 — עברית <b>bold</b>"]
    roger_page = timeline_texts(await page_of(web_client, "/Roger%20Histand"))
    assert roger_page == ["twin", "same text twice", "in between", "same text twice"]

    assert await log_in(web_client, "alice", ALICE_PW)
    home = timeline_texts(await page_of(web_client, "/"))
    # Her own and those of the two she follows (Bjørn, Roger), nothing flagged.
    assert home == [
        "flag unknown",
        "twin",
        "same text twice",
        "in between",
        "same text twice",
        "hej fra Bjørn 🎉 — עברית <b>bold</b>",
        "hello from alice",
        "undated",
    ]


# -- idempotency and merging -------------------------------------------------------------


async def test_second_run_imports_nothing_and_reports_what_is_there(
    orm: Settings, legacy_path: Path
) -> None:
    assert await import_legacy(legacy_path) == FIRST_REPORT
    before = await snapshot()

    report = await import_legacy(legacy_path)

    assert report == SECOND_REPORT
    assert report.lines()[0] == (
        "users: 0 imported, 5 already present, 0 skipped (invalid or duplicate username)"
    )
    assert await snapshot() == before


async def test_re_run_after_legacy_changes_imports_only_what_is_new(
    orm: Settings, legacy_path: Path
) -> None:
    await import_legacy(legacy_path)
    conn = sqlite3.connect(legacy_path)
    with conn:
        # The legacy app kept running during the migration window.
        conn.execute("update message set flagged = 1 where message_id = 1")
        conn.execute(
            "insert into user (user_id, username, email, pw_hash) values (6, 'newcomer', "
            "'new@example.com', ?)",
            (pbkdf2(ROGER_PW),),
        )
        conn.execute("insert into follower values (6, 1)")
        conn.executemany(
            "insert into message (message_id, author_id, text, pub_date, flagged)"
            " values (?, ?, ?, ?, ?)",
            [
                (14, 6, "first post", T + 900, 0),
                (15, 3, "same text twice", T + 300, 0),  # now three identical copies
            ],
        )
    conn.close()

    report = await import_legacy(legacy_path)

    assert report == ImportReport(
        users_imported=1,
        users_existing=5,
        follows_imported=1,
        follows_existing=4,
        follows_skipped=2,
        messages_imported=2,
        messages_existing=12,
        messages_skipped=1,
    )
    stored = await stored_messages()
    assert [m for m in stored if m[1] == "hello from alice"] == [
        ("alice", "hello from alice", T, False)
    ]  # flagged since: still one copy, not a second, flagged one
    assert [m for m in stored if m[1] == "same text twice"] == [
        (ROGER, "same text twice", T + 300, False)
    ] * 3
    assert ("newcomer", "first post", T + 900, False) in stored
    assert ("newcomer", "alice") in await stored_follows()


async def test_import_merges_into_users_that_already_exist(
    orm: Settings, legacy_path: Path
) -> None:
    alice = await users.register("alice", "alice@new.example", "alice's new password")
    roger = await users.register(ROGER, "roger@new.example", "roger's new password")
    await follows.follow("alice", ROGER)
    await Message.create(author_id=alice.id, text="hello from alice", pub_date=T, flagged=False)
    await messages.post("alice", "posted on the new app", now=T + 10_000)

    report = await import_legacy(legacy_path)

    assert report == ImportReport(
        users_imported=3,
        users_existing=2,
        follows_imported=3,
        follows_existing=1,
        follows_skipped=2,
        messages_imported=11,
        messages_existing=1,
        messages_skipped=1,
    )
    # The accounts that exist are kept as they are: same id, email and password.
    merged_alice = await User.get(username="alice")
    assert (merged_alice.id, merged_alice.email) == (alice.id, "alice@new.example")
    assert (await User.get(username=ROGER)).id == roger.id
    assert (await users.authenticate("alice", "alice's new password")).id == alice.id
    with pytest.raises(users.LoginFailed):
        await users.authenticate("alice", ALICE_PW)
    assert await stored_follows() == EXPECTED_FOLLOWS
    assert await stored_messages() == sorted(
        [*EXPECTED_MESSAGES, ("alice", "posted on the new app", T + 10_000, False)]
    )


# -- logging in with a legacy password ------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "legacy_prefix"),
    [
        ("alice", ALICE_PW, "pbkdf2:sha256:"),
        (BJORN, BJORN_PW, "scrypt:"),
        (NUMERIC, NUMERIC_PW, "scrypt:"),
    ],
)
async def test_legacy_password_logs_in_and_is_upgraded_to_argon2(
    orm: Settings,
    web_client: Client,
    legacy_path: Path,
    username: str,
    password: str,
    legacy_prefix: str,
) -> None:
    await import_legacy(legacy_path)
    legacy_hash = await stored_hash(username)
    assert legacy_hash.startswith(legacy_prefix)

    assert not await log_in(web_client, username, password + "x")
    assert await stored_hash(username) == legacy_hash  # a failed login changes nothing

    assert await log_in(web_client, username, password)
    upgraded = await stored_hash(username)
    assert upgraded.startswith("$argon2id$")

    await log_out(web_client)
    assert await log_in(web_client, username, password)
    await log_out(web_client)
    assert not await log_in(web_client, username, password.upper() + "!")
    assert await stored_hash(username) == upgraded  # already current: not re-hashed


# -- refusals, through the real command line --------------------------------------------


def _text_file(path: Path) -> None:
    path.write_text("user_id,username\n1,alice\n" * 50)


def _unrelated_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("create table notes (id integer primary key, body text)")
    conn.commit()
    conn.close()


def _missing_column(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA.replace(", flagged integer", ""))
    conn.close()


def _new_minitwit_schema(path: Path) -> None:
    """Pointing the importer at a new MiniTwit database instead of a legacy one."""
    conn = sqlite3.connect(path)
    conn.executescript(
        'create table "user" (id integer primary key, username varchar(255), '
        "email varchar(255), pw_hash varchar(255));"
        "create table follower (id integer primary key, who_id int, whom_id int);"
        "create table message (id integer primary key, author_id int, text text, "
        "pub_date bigint, flagged int);"
    )
    conn.close()


def _fails_part_way(path: Path) -> None:
    """A legacy file whose message rows cannot be read: the users are written first."""
    build_legacy(path)
    conn = sqlite3.connect(path)
    conn.executescript(
        "alter table message rename to message_rows;"
        "create view message as select message_id, author_id, text, pub_date,"
        " case when message_id = 5 then abs(-9223372036854775807 - 1) else flagged end"
        " as flagged from message_rows;"
    )
    conn.close()


REFUSALS: dict[str, tuple[Callable[[Path], None] | None, str]] = {
    "missing file": (None, "no such file"),
    "a directory": (lambda path: path.mkdir(), "not a file"),
    "text file": (_text_file, "not a readable SQLite database (file is not a database)"),
    "empty file": (
        lambda path: path.touch(),
        "not an ITU-MiniTwit database (no table 'user'; no table 'follower'; no table 'message')",
    ),
    "sqlite without those tables": (
        _unrelated_sqlite,
        "not an ITU-MiniTwit database (no table 'user'; no table 'follower'; no table 'message')",
    ),
    "a column missing": (
        _missing_column,
        "not an ITU-MiniTwit database (table 'message' has no column flagged)",
    ),
    "the new schema": (
        _new_minitwit_schema,
        "not an ITU-MiniTwit database (table 'user' has no column user_id; "
        "table 'message' has no column message_id)",
    ),
    "unreadable half-way": (
        _fails_part_way,
        "reading the legacy database failed (integer overflow); nothing was imported",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_refuses_what_is_not_a_legacy_database_and_changes_nothing(
    orm: Settings, tmp_path: Path, case: str
) -> None:
    await users.register("alice", "alice@new.example", "alice's new password")
    await messages.post("alice", "already here", now=T)
    before = await snapshot()
    build, reason = REFUSALS[case]
    path = tmp_path / "legacy.db"
    if build is not None:
        build(path)

    result = await cli(orm.database_url, path)

    assert result.returncode == 2, result.stderr
    assert result.stderr == f"minitwit import-sqlite: {path}: {reason}\n"
    assert result.stdout == ""
    assert await snapshot() == before


async def test_cli_into_an_unmigrated_database_fails_cleanly(
    tmp_path: Path, legacy_path: Path
) -> None:
    target = tmp_path / "never-migrated.db"

    result = await cli(f"sqlite://{target}", legacy_path)

    assert result.returncode == 1
    assert result.stderr.startswith(
        "minitwit import-sqlite: the import failed and was rolled back, nothing was imported: "
    )
    assert "no such table" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# -- end to end through the command line --------------------------------------------------


async def test_cli_imports_then_reports_existing_counts_and_the_user_logs_in(
    orm: Settings, web_client: Client, legacy_path: Path
) -> None:
    first = await cli(orm.database_url, legacy_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == FIRST_REPORT.lines()
    assert first.stdout.splitlines()[2] == (
        "messages: 12 imported, 0 already present, "
        "1 skipped (unknown author or invalid text or date)"
    )

    second = await cli(orm.database_url, legacy_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == SECOND_REPORT.lines()

    assert await stored_users() == EXPECTED_USERS
    assert await stored_follows() == EXPECTED_FOLLOWS
    assert await stored_messages() == EXPECTED_MESSAGES
    assert await log_in(web_client, BJORN, BJORN_PW)
    assert (await stored_hash(BJORN)).startswith("$argon2id$")


async def test_a_file_name_with_uri_characters_is_read_as_it_is(
    orm: Settings, tmp_path: Path
) -> None:
    # sqlite3 opens the file through a file: URI; '?', '#' and '%' must not cut the name.
    path = build_legacy(tmp_path / "backup 100% #2?.db")
    assert await import_legacy(path) == FIRST_REPORT


# -- what cannot be stored ------------------------------------------------------------------


async def test_rows_the_database_cannot_store_are_skipped_and_counted(
    orm: Settings, tmp_path: Path
) -> None:
    pw_hash = pbkdf2(ROGER_PW)
    path = build_legacy(
        tmp_path / "odd.db",
        users_rows=[
            (1, "ok", "ok@example.com", pw_hash),
            (2, "", "empty@example.com", pw_hash),
            (3, "nul\x00name", "nul@example.com", pw_hash),
            (4, "ok", "again@example.com", pw_hash),  # the same username again
            (5, "nul email", "a\x00b@example.com", pw_hash),
            (6, "x" * 256, "long@example.com", pw_hash),
            (7, "no hash", "nohash@example.com", ""),
        ],
        follow_rows=[(1, 2), (1, 5)],
        message_rows=[
            (1, 1, "fine", T, 0),
            (2, 4, "by the second 'ok'", T + 1, 0),  # the account of that name
            (3, 1, "nul\x00text", T + 2, 0),
            (4, 1, "dated in words", "yesterday", 0),
            (5, 1, "far beyond bigint", 1e30, 0),
            (6, 2, "by a skipped user", T + 3, 0),
        ],
    )
    conn = sqlite3.connect(path)
    with conn:  # invalid UTF-8, as a C client could have written it
        conn.execute(
            "insert into user values (8, cast(x'ff41' as text), 'bad@example.com', ?)",
            (pw_hash,),
        )
        conn.execute("insert into message values (7, 1, cast(x'c328' as text), ?, 0)", (T + 4,))
    conn.close()

    report = await import_legacy(path)

    assert report == ImportReport(
        users_imported=1,
        users_skipped=7,
        follows_skipped=2,
        messages_imported=2,
        messages_skipped=5,
    )
    assert await stored_users() == {("ok", "ok@example.com", pw_hash)}
    assert await stored_messages() == [
        ("ok", "by the second 'ok'", T + 1, False),
        ("ok", "fine", T, False),
    ]


# -- size ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_large_legacy_database_imports_in_batches_and_once(
    orm: Settings, tmp_path: Path
) -> None:
    # More users than one query may carry parameters (32,767 on PostgreSQL).
    n_users, n_follows, n_messages = 33_000, 5_000, 50_000
    rnd = random.Random(7)
    pw_hash = pbkdf2(ROGER_PW)
    follow_rows = [(rnd.randint(1, n_users), rnd.randint(1, n_users)) for _ in range(n_follows)]
    message_rows = [
        (i, rnd.randint(1, n_users), f"message {i} ünïcode", T + i // 3, int(i % 97 == 0))
        for i in range(1, n_messages + 1)
    ]
    path = build_legacy(
        tmp_path / "large.db",
        users_rows=[(i, f"user {i}", f"u{i}@example.com", pw_hash) for i in range(1, n_users + 1)],
        follow_rows=follow_rows,
        message_rows=message_rows,
    )
    distinct_follows = len(set(follow_rows))

    first = await import_legacy(path)
    assert first == ImportReport(
        users_imported=n_users, follows_imported=distinct_follows, messages_imported=n_messages
    )
    assert await User.all().count() == n_users
    assert await Follower.all().count() == distinct_follows
    assert await Message.all().count() == n_messages
    assert await Message.filter(flagged=True).count() == n_messages // 97

    second = await import_legacy(path)
    assert second == ImportReport(
        users_existing=n_users, follows_existing=distinct_follows, messages_existing=n_messages
    )
    assert await Message.all().count() == n_messages
