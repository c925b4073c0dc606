"""Bad input to every simulator endpoint: always a JSON 4xx, never a 500, never a change.

One table (``CASES``) lists the bad requests. Each runs against a seeded
database (alice follows bob, alice posted once, ``latest`` is 1) with
``?latest=777`` added to its query unless the case sets ``latest`` itself,
and must answer ``{"status": <code>, "error_msg": <non-empty text>}`` with
that code, leave every user, follower and message row exactly as it was, and
move ``latest`` precisely as the contract says: to 777 when the request passed
authorization and carried a valid ``latest`` (whatever the outcome), else not
at all. The rows are read with SQL, not through the app.

The whole table runs through the Quart test client on both databases; a
representative part runs again through a real ``minitwit serve``, on the API
port and under ``/api`` on the web port.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from quart.typing import TestClientProtocol as Client

from app.factory import MAX_BODY_BYTES
from app.passwords import hash_password_sync
from app.validation import STORED_TEXT_MAX
from tests.conftest import SIMULATOR_AUTH, LiveServer
from tests.db_state import execute_many, fetch, read_state

SEEDED_LATEST = 1
PROBE_LATEST = 777
INT64_MAX = 2**63 - 1
# Longer than the username column holds: nobody's name, never a database error.
TOO_LONG_TO_STORE = "x" * (STORED_TEXT_MAX + 1)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Send = Callable[[str, str, bytes | None, bool], Awaitable[Reply]]


def _headers(body: bytes | None, auth: bool) -> dict[str, str]:
    headers = dict(SIMULATOR_AUTH) if auth else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return headers


def quart_sender(client: Client) -> Send:
    async def send(method: str, path: str, body: bytes | None, auth: bool) -> Reply:
        response = await client.open(
            path, method=method, data=body or b"", headers=_headers(body, auth)
        )
        headers = {key.lower(): value for key, value in response.headers.items()}
        return Reply(response.status_code, headers, await response.get_data(as_text=False))

    return send


def http_sender(client: httpx.AsyncClient, base_url: str) -> Send:
    async def send(method: str, path: str, body: bytes | None, auth: bool) -> Reply:
        response = await client.request(
            method, base_url + path, content=body, headers=_headers(body, auth)
        )
        headers = {key.lower(): value for key, value in response.headers.items()}
        return Reply(response.status_code, headers, response.content)

    return send


def body(value: Any) -> bytes:
    """JSON as a client would send it; ``ensure_ascii`` writes a lone surrogate as ``\\ud800``."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


@functools.cache
def _password_hash() -> str:
    return hash_password_sync("secret")


async def seed(send: Send, database_url: str) -> None:
    """alice and bob; alice follows bob and has posted once; ``latest`` is 1.

    The two users are written with SQL and one shared hash: two argon2 hashes
    per case would be most of this module's run time. The rest goes through
    the API.
    """
    await execute_many(
        database_url,
        'INSERT INTO "user" (username, email, pw_hash) VALUES ($1, $2, $3)',
        [(name, f"{name}@example.com", _password_hash()) for name in ("alice", "bob")],
    )
    follow = body({"follow": "bob"})
    assert (await send("POST", f"/fllws/alice?latest={SEEDED_LATEST}", follow, True)).status == 204
    assert (await send("POST", "/msgs/alice", body({"content": "hello"}), True)).status == 204


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Bad:
    label: str
    method: str
    path: str  # with its query string, if any
    body: bytes | None
    status: int
    says: str  # a case-insensitive fragment the error_msg must contain
    records_latest: bool  # does ?latest= (ours or the case's own) move `latest`?
    auth: bool = True

    @property
    def id(self) -> str:
        return f"{self.method} {self.path.split('?')[0]} {self.label}"

    def with_probe(self) -> str:
        if "latest=" in self.path:
            return self.path
        return f"{self.path}{'&' if '?' in self.path else '?'}latest={PROBE_LATEST}"


REGISTER = {"username": "carol", "email": "carol@example.com", "pwd": "secret"}
POST_ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "register": ("/register", REGISTER),
    "message": ("/msgs/alice", {"content": "new"}),
    "follow": ("/fllws/alice", {"unfollow": "bob"}),
}
GET_ENDPOINTS = ["/msgs", "/msgs/alice", "/fllws/alice"]
WRONG_TYPES: dict[str, Any] = {
    "number": 1,
    "float": 1.5,
    "list": ["x"],
    "object": {"x": "y"},
    "bool": True,
}


def _bad_bodies() -> Iterable[Bad]:
    """Bodies that are not a JSON object, for every endpoint that reads one."""
    not_json = {
        "empty": b"",
        "truncated": b'{"username": "carol"',
        "single-quotes": b"{'content': 'x'}",
        "two-documents": b"{} {}",
        "bare-word": b"undefined",
        "not-utf8": b'{"content": "\xff\xfe"}',
        "latin1": '{"content": "café"}'.encode("latin-1"),
    }
    not_object = {
        "list": b"[]",
        "list-of-object": b'[{"username": "carol"}]',
        "string": b'"carol"',
        "number": b"42",
        "null": b"null",
        "true": b"true",
    }
    too_deep = {
        "deep-array": b"[" * 100_000,
        "deep-object": b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    }
    for path, _ in POST_ENDPOINTS.values():
        for label, raw in not_json.items():
            yield Bad(label, "POST", path, raw, 400, "valid JSON", True)
        for label, raw in not_object.items():
            yield Bad(label, "POST", path, raw, 400, "JSON object", True)
        for label, raw in too_deep.items():
            yield Bad(label, "POST", path, raw, 400, "nested", True)
        oversized = b'{"content": "' + b"x" * MAX_BODY_BYTES + b'"}'
        yield Bad("over-1MiB", "POST", path, oversized, 413, "too large", True)


def _register_fields() -> Iterable[Bad]:
    def case(label: str, changes: dict[str, Any], says: str, drop: str = "") -> Bad:
        values = {**REGISTER, **changes}
        values.pop(drop, None)
        return Bad(label, "POST", "/register", body(values), 400, says, True)

    missing = {
        "username": "enter a username",
        "email": "valid email",
        "pwd": "enter a password",
    }
    for name, says in missing.items():
        yield case(f"missing-{name}", {}, says, drop=name)
        yield case(f"null-{name}", {name: None}, says)
        for label, value in WRONG_TYPES.items():
            yield case(f"{label}-{name}", {name: value}, f"'{name}' must be a string")
        yield case(f"surrogate-{name}", {name: REGISTER[name] + "\ud800"}, "surrogate")
        if name != "pwd":  # a password is hashed, never stored: a NUL in it is fine
            yield case(f"nul-{name}", {name: REGISTER[name] + "\x00"}, "NUL")
    yield Bad("empty-object", "POST", "/register", b"{}", 400, "enter a username", True)
    yield case("empty-username", {"username": ""}, "enter a username")
    yield case("email-without-at", {"email": "carol.example.com"}, "valid email")
    yield case("taken", {"username": "alice"}, "already taken")
    yield case("username-65", {"username": "u" * 65}, "at most 64")
    yield case("username-65-emoji", {"username": "🎉" * 65}, "at most 64")
    yield case("email-255", {"email": "e" * 243 + "@example.com"}, "at most 254")
    raw = b'{"username": "a\xed\xa0\x80b", "email": "c@d", "pwd": "x"}'
    yield Bad("utf8-coded-surrogate", "POST", "/register", raw, 400, "surrogate", True)


def _message_fields() -> Iterable[Bad]:
    def case(label: str, value: dict[str, Any], says: str) -> Bad:
        return Bad(label, "POST", "/msgs/alice", body(value), 400, says, True)

    yield case("missing-content", {}, "'content' is required")
    yield case("misnamed-content", {"text": "hi"}, "'content' is required")
    yield case("null-content", {"content": None}, "'content' is required")
    for label, value in WRONG_TYPES.items():
        yield case(f"{label}-content", {"content": value}, "'content' must be a string")
    yield case("empty-content", {"content": ""}, "must not be empty")
    yield case("surrogate-content", {"content": "a\ud800"}, "surrogate")
    yield case("low-surrogate-content", {"content": "\udc00b"}, "surrogate")
    yield case("nul-content", {"content": "a\x00b"}, "NUL")
    yield case("content-1001", {"content": "m" * 1001}, "at most 1000")
    yield case("content-1001-emoji", {"content": "🎉" * 1001}, "at most 1000")


def _follow_fields() -> Iterable[Bad]:
    def case(label: str, value: dict[str, Any], says: str) -> Bad:
        return Bad(label, "POST", "/fllws/alice", body(value), 400, says, True)

    yield case("neither", {}, "exactly one")
    yield case("misnamed", {"follows": "bob"}, "exactly one")
    yield case("both", {"follow": "bob", "unfollow": "bob"}, "exactly one")
    for action in ("follow", "unfollow"):
        yield case(f"null-{action}", {action: None}, f"'{action}' is required")
        for label, value in WRONG_TYPES.items():
            yield case(f"{label}-{action}", {action: value}, f"'{action}' must be a string")


def _unknown_users() -> Iterable[Bad]:
    def case(label: str, method: str, path: str, value: Any = None) -> Bad:
        raw = None if value is None else body(value)
        return Bad(label, method, path, raw, 404, "unknown user", True)

    yield case("ghost", "GET", "/msgs/ghost")
    yield case("ghost", "GET", "/fllws/ghost")
    yield case("ghost", "POST", "/msgs/ghost", {"content": "boo"})
    # The unknown author is answered before the bad message: 404, not 400.
    yield case("ghost-empty-content", "POST", "/msgs/ghost", {"content": ""})
    yield case("ghost-content-1001", "POST", "/msgs/ghost", {"content": "m" * 1001})
    yield case("ghost-follower", "POST", "/fllws/ghost", {"follow": "bob"})
    yield case("follow-ghost", "POST", "/fllws/alice", {"follow": "ghost"})
    yield case("unfollow-ghost", "POST", "/fllws/alice", {"unfollow": "ghost"})
    yield case("follow-empty-name", "POST", "/fllws/alice", {"follow": ""})
    yield case("follow-surrogate", "POST", "/fllws/alice", {"follow": "\ud800"})
    yield case("follow-nul", "POST", "/fllws/alice", {"follow": "b\x00ob"})
    yield case("follow-65-chars", "POST", "/fllws/alice", {"follow": "b" * 65})
    yield case("follow-too-long-to-store", "POST", "/fllws/alice", {"follow": TOO_LONG_TO_STORE})
    yield case("unfollow-too-long", "POST", "/fllws/alice", {"unfollow": TOO_LONG_TO_STORE})
    yield case("too-long-to-store", "GET", f"/msgs/{TOO_LONG_TO_STORE}")
    yield case("too-long-to-store", "GET", f"/fllws/{TOO_LONG_TO_STORE}")
    yield case("too-long-to-store", "POST", f"/msgs/{TOO_LONG_TO_STORE}", {"content": "x"})
    yield case("too-long-to-store", "POST", f"/fllws/{TOO_LONG_TO_STORE}", {"follow": "alice"})
    yield case("other-case", "GET", "/msgs/Alice")
    yield case("trailing-space", "GET", "/msgs/alice%20")
    yield case("nul-in-path", "GET", "/msgs/al%00ice")
    yield case("invalid-utf8-in-path", "GET", "/fllws/%ED%A0%80")
    yield case("nested-path", "POST", "/msgs/alice/extra", {"content": "x"})


def _query_parameters() -> Iterable[Bad]:
    bad_no = {
        "word": "abc",
        "fraction": "1.5",
        "negative": "-1",
        "exponent": "1e3",
        "hex": "0x10",
        "arabic-digit": "%D9%A1",
        "leading-space": "%205",
    }
    for path in GET_ENDPOINTS:
        for label, raw in bad_no.items():
            yield Bad(f"no={label}", "GET", f"{path}?no={raw}", None, 400, "'no'", True)
    # `no` is read before the user is looked up.
    yield Bad("no=word", "GET", "/fllws/ghost?no=abc", None, 400, "'no'", True)

    bad_latest = {
        "word": "abc",
        "fraction": "1.5",
        "empty": "",
        "exponent": "1e3",
        "int64-overflow": str(INT64_MAX + 1),
        "int64-min": str(-(INT64_MAX + 1)),
        "20-digits": "9" * 20,
    }
    for label, raw in bad_latest.items():
        yield Bad(f"latest={label}", "GET", f"/msgs?latest={raw}", None, 400, "'latest'", False)
    # A bad `latest` refuses the whole request: what it asked for does not happen.
    for label, raw in (("word", "abc"), ("int64-overflow", str(INT64_MAX + 1))):
        for path, value in POST_ENDPOINTS.values():
            yield Bad(
                f"latest={label}",
                "POST",
                f"{path}?latest={raw}",
                body(value),
                400,
                "'latest'",
                False,
            )
        for path in GET_ENDPOINTS[1:]:
            yield Bad(
                f"latest={label}", "GET", f"{path}?latest={raw}", None, 400, "'latest'", False
            )


def _routes_and_methods() -> Iterable[Bad]:
    unknown = [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/"),
        ("GET", "/msgs/"),
        ("POST", "/fllws/"),
        ("GET", "/fllws"),
        ("GET", "/latest/"),
        ("GET", "/register/alice"),
        ("GET", "/api/msgs"),  # no /api prefix on the API's own port
        ("GET", "/static/style.css"),  # the web UI's files are not served here
    ]
    for method, path in unknown:
        raw = body({"content": "x"}) if method == "POST" else None
        yield Bad("unknown-route", method, path, raw, 404, "no such resource", False)
    wrong = [
        ("GET", "/register", None),
        ("PUT", "/register", REGISTER),
        ("DELETE", "/register", None),
        ("POST", "/latest", None),
        ("DELETE", "/latest", None),
        ("POST", "/msgs", {"content": "x"}),
        ("PUT", "/msgs", {"content": "x"}),
        ("DELETE", "/msgs", None),
        ("PUT", "/msgs/alice", {"content": "x"}),
        ("PATCH", "/msgs/alice", {"content": "x"}),
        ("DELETE", "/msgs/alice", None),
        ("PUT", "/fllws/alice", {"follow": "bob"}),
        ("DELETE", "/fllws/alice", {"unfollow": "bob"}),
    ]
    for method, path, value in wrong:
        raw = None if value is None else body(value)
        yield Bad("wrong-method", method, path, raw, 405, "not allowed", False)


def _unauthorized() -> Iterable[Bad]:
    """Authorization comes first: without it nothing is parsed, done or recorded."""
    forbidden = "not authorized"
    yield Bad("no-auth-bad-json", "POST", "/msgs/alice", b"{", 403, forbidden, False, auth=False)
    yield Bad(
        "no-auth-unfollow",
        "POST",
        "/fllws/alice",
        body({"unfollow": "bob"}),
        403,
        forbidden,
        False,
        auth=False,
    )
    yield Bad("no-auth-bad-no", "GET", "/msgs?no=abc", None, 403, forbidden, False, auth=False)
    yield Bad(
        "no-auth-bad-latest",
        "GET",
        "/fllws/alice?latest=x",
        None,
        403,
        forbidden,
        False,
        auth=False,
    )
    yield Bad(
        "no-auth-ghost", "POST", "/msgs/ghost", body({"content": "x"}), 403, forbidden, False,
        auth=False,
    )  # fmt: skip


CASES: list[Bad] = [
    *_bad_bodies(),
    *_register_fields(),
    *_message_fields(),
    *_follow_fields(),
    *_unknown_users(),
    *_query_parameters(),
    *_routes_and_methods(),
    *_unauthorized(),
]

# The representative part that also runs through the real server.
LIVE_IDS = {
    "POST /register truncated",
    "POST /msgs/alice not-utf8",
    "POST /fllws/alice list",
    "POST /msgs/alice deep-array",
    "POST /register over-1MiB",
    "POST /msgs/alice over-1MiB",
    "POST /fllws/alice over-1MiB",
    "POST /register number-username",
    "POST /register surrogate-pwd",
    "POST /msgs/alice nul-content",
    "POST /msgs/alice content-1001-emoji",
    "POST /fllws/alice both",
    "POST /fllws/alice follow-surrogate",
    "GET /msgs/ghost ghost",
    "GET /msgs/al%00ice nul-in-path",
    "GET /fllws/%ED%A0%80 invalid-utf8-in-path",
    "GET /msgs no=negative",
    "GET /fllws/alice no=word",
    "POST /register latest=word",
    "GET /msgs latest=int64-overflow",
    "GET /nope unknown-route",
    "DELETE /msgs wrong-method",
    "GET /register wrong-method",
    "POST /msgs/alice no-auth-bad-json",
}
LIVE_CASES = [case for case in CASES if case.id in LIVE_IDS]


def test_the_table_is_consistent() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert {case.id for case in LIVE_CASES} == LIVE_IDS, "a live id names no case"


# --------------------------------------------------------------------------- checks


def assert_json_error(reply: Reply, case: Bad) -> None:
    assert reply.status == case.status, reply.body[:300]
    assert reply.headers.get("content-type", "").startswith("application/json")
    payload = reply.json()
    assert set(payload) == {"status", "error_msg"}, payload
    assert payload["status"] == case.status
    message = payload["error_msg"]
    assert isinstance(message, str)
    assert message.strip()
    assert case.says.lower() in message.lower(), message
    assert "Traceback" not in message
    if case.status == 405:
        allowed = {m.strip() for m in reply.headers.get("allow", "").split(",")}
        assert allowed - {""}, "a 405 names the allowed methods"
        assert case.method not in allowed


async def check_case(send: Send, database_url: str, case: Bad) -> None:
    await seed(send, database_url)
    before = await read_state(database_url)
    assert before.latest == SEEDED_LATEST
    reply = await send(case.method, case.with_probe(), case.body, case.auth)
    assert_json_error(reply, case)
    after = await read_state(database_url)
    assert after.counts() == before.counts()
    assert after.without_latest() == before.without_latest()
    assert after.latest == (PROBE_LATEST if case.records_latest else SEEDED_LATEST)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_bad_input_is_a_json_4xx_and_changes_nothing(
    api_client: Client, database_url: str, case: Bad
) -> None:
    await check_case(quart_sender(api_client), database_url, case)


@pytest.fixture(params=["api-port", "web-port-api-prefix"])
async def live_send(request: pytest.FixtureRequest, live: LiveServer) -> AsyncIterator[Send]:
    base = live.api_url if request.param == "api-port" else f"{live.web_url}/api"
    async with httpx.AsyncClient(timeout=30) as client:
        yield http_sender(client, base)


@pytest.mark.parametrize("case", LIVE_CASES, ids=lambda case: case.id)
async def test_bad_input_through_the_real_server(
    live_send: Send, live: LiveServer, case: Bad
) -> None:
    await check_case(live_send, live.database_url, case)


async def test_oversized_chunked_body_is_413(live: LiveServer) -> None:
    """Without a Content-Length the limit still holds, counted as the body streams in."""
    chunk = b" " * 65536
    async with httpx.AsyncClient(timeout=30) as client:
        await seed(http_sender(client, live.api_url), live.database_url)
        before = await read_state(live.database_url)
        for base in (live.api_url, f"{live.web_url}/api"):

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"content": "x"'
                for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
                    yield chunk
                yield b"}"

            response = await client.post(
                f"{base}/msgs/alice", content=chunks(), headers=_headers(b"", True)
            )
            assert "content-length" not in response.request.headers
            assert response.status_code == 413
            assert response.json()["status"] == 413
            assert "too large" in response.json()["error_msg"]
        after = await read_state(live.database_url)
    assert after.without_latest() == before.without_latest()


# --------------------------------------------------------------------------- the edges that pass


@dataclass(frozen=True)
class Edge:
    label: str
    path: str
    raw: bytes
    table: str  # which table gains the row
    expect: tuple[Any, ...]  # the new row's values, as the app must store them


EDGES = [
    Edge(
        "username-64",
        "/register",
        body({"username": "u" * 64, "email": "u@example.com", "pwd": "p"}),
        "users",
        ("u" * 64, "u@example.com"),
    ),
    Edge(
        "username-64-emoji",
        "/register",
        body({"username": "🎉" * 64, "email": "e@example.com", "pwd": "p"}),
        "users",
        ("🎉" * 64, "e@example.com"),
    ),
    Edge(
        "email-254",
        "/register",
        body({"username": "carol", "email": "e" * 242 + "@example.com", "pwd": "p"}),
        "users",
        ("carol", "e" * 242 + "@example.com"),
    ),
    Edge(
        "email-just-an-at",
        "/register",
        body({"username": "carol", "email": "@", "pwd": "p"}),
        "users",
        ("carol", "@"),
    ),
    Edge("content-1000", "/msgs/alice", body({"content": "m" * 1000}), "messages", ("m" * 1000,)),
    Edge(
        "content-1000-emoji",
        "/msgs/alice",
        body({"content": "🎉" * 1000}),
        "messages",
        ("🎉" * 1000,),
    ),
    Edge(
        "escaped-surrogate-pair",
        "/msgs/alice",
        b'{"content": "party \\ud83c\\udf89"}',
        "messages",
        ("party 🎉",),
    ),
    Edge(
        "body-exactly-1MiB",
        "/msgs/alice",
        b'{"content": "padded"}'.ljust(MAX_BODY_BYTES),
        "messages",
        ("padded",),
    ),
    Edge(
        "unknown-fields-ignored",
        "/msgs/alice",
        body({"content": "extra", "flagged": True, "user": "bob"}),
        "messages",
        ("extra",),
    ),
]


@pytest.mark.parametrize("edge", EDGES, ids=lambda edge: edge.label)
async def test_limits_are_inclusive(api_client: Client, database_url: str, edge: Edge) -> None:
    send = quart_sender(api_client)
    await seed(send, database_url)
    before = await read_state(database_url)
    assert len(edge.raw) <= MAX_BODY_BYTES
    reply = await send("POST", f"{edge.path}?latest=5", edge.raw, True)
    assert reply.status == 204, reply.body
    assert reply.body == b""
    after = await read_state(database_url)
    assert after.latest == 5
    if edge.table == "users":
        assert after.users[:-1] == before.users
        assert after.users[-1][1:3] == edge.expect
    else:
        assert after.messages[:-1] == before.messages
        new = after.messages[-1]
        assert (new[2],) == edge.expect
        assert new[1] == before.users[0][0]  # alice's id
        assert new[4] is False  # a body cannot flag its own message


async def test_no_is_capped_and_zero_means_none(api_client: Client, database_url: str) -> None:
    send = quart_sender(api_client)
    await seed(send, database_url)
    alice_id, bob_id = (row[0] for row in (await read_state(database_url)).users)
    # 1,100 more messages by alice, written directly (the API would take a while).
    await execute_many(
        database_url,
        "INSERT INTO message (author_id, text, pub_date, flagged) VALUES ($1, $2, $3, $4)",
        [(alice_id, f"m{i}", 1_000 + i, False) for i in range(1100)],
    )

    async def count(path: str) -> int:
        reply = await send("GET", path, None, True)
        assert reply.status == 200, reply.body
        data = reply.json()
        return len(data["follows"]) if isinstance(data, dict) else len(data)

    for path in ("/msgs", "/msgs/alice"):
        assert await count(path) == 100
        assert await count(f"{path}?no=0") == 0
        assert await count(f"{path}?no=000") == 0
        assert await count(f"{path}?no=7") == 7
        assert await count(f"{path}?no=0007") == 7
        assert await count(f"{path}?no=") == 100
        assert await count(f"{path}?no=1000") == 1000
        assert await count(f"{path}?no=1001") == 1000
        assert await count(f"{path}?no={'9' * 30}") == 1000
    assert await count("/fllws/alice?no=0") == 0
    assert await count(f"/fllws/alice?no={'9' * 30}") == 1
    total = await fetch(database_url, "SELECT COUNT(*) FROM message")
    assert total == [(1101,)]
    assert bob_id != alice_id


@pytest.mark.parametrize("value", [INT64_MAX, -INT64_MAX, 0, -1])
async def test_latest_extremes_are_recorded_exactly(
    api_client: Client, database_url: str, value: int
) -> None:
    send = quart_sender(api_client)
    reply = await send("GET", f"/msgs?latest={value}", None, True)
    assert reply.status == 200
    assert (await read_state(database_url)).latest == value
    assert (await send("GET", "/latest", None, False)).json() == {"latest": value}


@pytest.mark.parametrize("query", ["latest=5", "latest=abc", "latest=", f"latest={'9' * 40}"])
async def test_get_latest_ignores_a_latest_parameter(
    api_client: Client, database_url: str, query: str
) -> None:
    send = quart_sender(api_client)
    await seed(send, database_url)
    reply = await send("GET", f"/latest?{query}", None, False)
    assert reply.status == 200
    assert reply.json() == {"latest": SEEDED_LATEST}
    assert (await read_state(database_url)).latest == SEEDED_LATEST


def test_cases_cover_every_endpoint() -> None:
    """Each simulator route and method has bad-input cases of its own."""
    covered = {(case.method, case.path.split("?")[0]) for case in CASES}
    for needed in [
        ("POST", "/register"),
        ("GET", "/msgs"),
        ("GET", "/msgs/alice"),
        ("POST", "/msgs/alice"),
        ("GET", "/fllws/alice"),
        ("POST", "/fllws/alice"),
        ("POST", "/latest"),
    ]:
        assert needed in covered, needed
    statuses = {case.status for case in CASES}
    assert statuses == {400, 403, 404, 405, 413}
