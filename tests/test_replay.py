"""The simulator toolkit (``app.simulator``): scenario format, generator, expected state, replay.

The format and generator tests are pure. The request-building tests go
through a real loopback socket (a tiny recording server), so what is checked
is what goes on the wire. The replay tests drive the real ``minitwit serve``
(the ``live`` fixture) on SQLite and PostgreSQL and compare the final state,
read back through the API, with the state the scenario implies.

Latency is reported, never asserted: the long replay uses a generous timeout
(a hang guard), not the simulator's 0.3 s, so a busy CI box cannot fail it;
it prints the percentiles and how many actions the real simulator would have
counted as timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.simulator.expected import State, UserState, differences, expected_state, usernames
from app.simulator.generate import generate
from app.simulator.replay import (
    REFERENCE_EXPECTED,
    REFERENCE_TIMEOUT,
    SIMULATOR_CREDENTIALS,
    Credentials,
    OutcomeKind,
    build_request,
    new_client,
    read_state,
    replay,
)
from app.simulator.scenario import (
    Action,
    Command,
    ScenarioError,
    format_action,
    format_scenario,
    parse_bytes,
    parse_line,
    parse_text,
    read_scenario,
    write_scenario,
)
from app.validation import MESSAGE_MAX, USERNAME_MAX
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer

HANG_GUARD = 10.0  # seconds; a bound against hangs, not a performance claim

# --- the scenario format -----------------------------------------------------------------

EDGE_TEXTS = [
    "plain",
    "a\ttab inside",  # tabs in a tweet are kept (columns 6.. are joined back)
    "\tleading and trailing tab\t",
    "  spaces kept  ",
    "line\u2028separator, paragraph\u2029separator",  # str.splitlines would cut these
    "next\x85line, vertical\x0btab, form\x0cfeed, file\x1cgroup\x1drecord\x1eunit",
    "quotes \" and ' and backslash \\ and \\n literally",
    "<b>bold</b> & <script>alert('x')</script>",
    "emoji 🎉 👩‍👩‍👧‍👦 🇩🇰, RTL עברית مرحبا, combining cafe\u0301",
    "\ufeffa byte order mark inside",
    "",  # the format holds an empty text (the API would refuse it)
]


def test_edge_case_actions_round_trip() -> None:
    actions = [
        Action.register(1, "Roger Histand", "roger@example.com", "p\"w'd\\ \\\\ '", 5, 17),
        Action.register(2, "Jürgen Müller", "jürgen müller@exämple.org", "  spaced  ", 0, 18),
        *(
            Action.tweet(10 + i, "Roger Histand", text, i, 100 + i)
            for i, text in enumerate(EDGE_TEXTS)
        ),
        Action.follow(30, "Roger Histand", "Jürgen Müller", 1, 200),
        Action.unfollow(31, "Jürgen Müller", "Roger\u00a0Histand", 1, 201),
        Action.tweet(-1, "AC/DC Fan", "negative ids are integers too"),
    ]
    text = format_scenario(actions)
    assert parse_text(text) == actions
    assert format_scenario(parse_text(text)) == text
    assert parse_bytes(text.encode("utf-8")) == actions


def test_generated_scenario_round_trips_through_a_file(tmp_path: Path) -> None:
    actions = generate(users=40, actions=1500, seed=7)
    path = tmp_path / "scenario.tsv"
    write_scenario(actions, path)
    assert read_scenario(path) == actions
    assert path.read_bytes().decode("utf-8") == format_scenario(actions)


def test_register_password_is_the_last_column() -> None:
    line = "7\t0\t1000\tregister\tRoger Histand\troger@example.com\tsomething\telse\tthe pw"
    action = parse_line(line)
    assert action == Action.register(7, "Roger Histand", "roger@example.com", "the pw", 0, 1000)


def test_line_ends_bom_and_blank_lines() -> None:
    lines = [
        "1\t0\t0\tregister\ta\ta@x\tpw",
        "2\t0\t0\ttweet\ta\tcrlf",
        "3\t0\t0\ttweet\ta\tlone cr",
        "4\t0\t0\ttweet\ta\tlast, no line end",
    ]
    text = "\ufeff" + lines[0] + "\n\n" + lines[1] + "\r\n" + lines[2] + "\r" + lines[3]
    parsed = parse_text(text)
    assert [a.id for a in parsed] == [1, 2, 3, 4]
    assert [a.text for a in parsed[1:]] == ["crlf", "lone cr", "last, no line end"]
    assert parsed[0].username == "a"  # the byte order mark is not part of the id
    with pytest.raises(ScenarioError) as error:  # blank lines are skipped but still counted
        parse_text("1\t0\t0\ttweet\ta\tx\n\n\nbroken\n")
    assert error.value.line_number == 4


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\t0\t0\ttweet\tonly five", "expected at least 6 tab-separated columns, found 5"),
        ("x\t0\t0\ttweet\ta\thi", "the action id (column 1) must be an integer"),
        ("1_000\t0\t0\ttweet\ta\thi", "the action id (column 1) must be an integer"),
        (" 7\t0\t0\ttweet\ta\thi", "the action id (column 1) must be an integer"),
        ("\u0661\u0662\t0\t0\ttweet\ta\thi", "the action id (column 1) must be an integer"),
        ("1\t-5\t0\ttweet\ta\thi", "the delay must not be negative"),
        ("1\t0\t1.5\ttweet\ta\thi", "the timestamp (column 3) must be an integer"),
        ("1\t0\t0\tretweet\ta\thi", "unknown command 'retweet'"),
        ("1\t0\t0\tTweet\ta\thi", "unknown command 'Tweet'"),
        ("1\t0\t0\ttweet\t\thi", "the username (column 5) is empty"),
        ("1\t0\t0\tregister\ta\ta@x", "a register needs an email (column 6) and a password"),
        ("1\t0\t0\tfollow\ta\tb\tc", "a follow takes exactly 6 columns"),
        ("1\t0\t0\tunfollow\ta\t", "the user to unfollow (column 6) is empty"),
    ],
)
def test_malformed_lines_name_the_line_and_the_problem(line: str, reason: str) -> None:
    text = "1\t0\t0\tregister\ta\ta@x\tpw\n2\t0\t0\tregister\tb\tb@x\tpw\n" + line + "\n"
    with pytest.raises(ScenarioError) as error:
        parse_text(text)
    assert error.value.line_number == 3
    assert str(error.value).startswith(f"line 3: {reason}")
    assert error.value.line == line


def test_invalid_utf8_names_its_line() -> None:
    data = b"1\t0\t0\tregister\ta\ta@x\tpw\n2\t0\t0\ttweet\ta\tok\n" + b"3\t0\t0\ttweet\ta\t\xff\n"
    with pytest.raises(ScenarioError, match=r"^line 3: not valid UTF-8"):
        parse_bytes(data)


@pytest.mark.parametrize(
    "action",
    [
        Action.tweet(1, "a", "two\nlines"),
        Action.tweet(1, "a", "carriage\rreturn"),
        Action.tweet(1, "tab\tname", "x"),
        Action.register(1, "a", "a@x", "tab\tin password"),
        Action.register(1, "a", "tab\t@x", "pw"),
        Action.follow(1, "a", "b\tc"),
        Action.follow(1, "a", ""),
        Action.tweet(1, "", "no user"),
    ],
)
def test_writer_refuses_what_would_not_read_back(action: Action) -> None:
    with pytest.raises(ScenarioError):
        format_action(action)


def test_action_fields_must_match_the_command() -> None:
    with pytest.raises(ValueError, match="needs 'text'"):
        Action(1, 0, 0, Command.TWEET, "a")
    with pytest.raises(ValueError, match="must not have 'other'"):
        Action(1, 0, 0, Command.REGISTER, "a", email="a@x", password="pw", other="b")
    assert Action(1, 0, 0, "tweet", "a", text="x").command is Command.TWEET  # type: ignore[arg-type]


# --- the generator -----------------------------------------------------------------------


def test_generator_is_deterministic() -> None:
    assert generate(30, 600, seed=5) == generate(30, 600, seed=5)
    assert generate(30, 600, seed=5) != generate(30, 600, seed=6)


def test_generated_scenario_has_the_real_shape() -> None:
    users, total = 200, 26_000
    actions = generate(users, total, seed=11)
    assert [a.id for a in actions] == list(range(1, total + 1))
    commands = Counter(a.command for a in actions)
    assert commands[Command.REGISTER] == users
    rest = total - users
    for command, share in [(Command.TWEET, 0.44), (Command.FOLLOW, 0.38), (Command.UNFOLLOW, 0.18)]:
        assert abs(commands[command] / rest - share) < 0.02, (command, commands[command] / rest)

    registered: set[str] = set()
    follows: dict[str, set[str]] = {}
    unfollows_not_followed = refollows = 0
    for action in actions:
        if action.command is Command.REGISTER:
            assert action.username not in registered  # each user registered once
            registered.add(action.username)
            follows[action.username] = set()
            continue
        assert action.username in registered  # ... before they act
        if action.other is not None:
            assert action.other in registered  # ... and before anyone follows them
            assert action.other != action.username
            followed = follows[action.username]
            if action.command is Command.FOLLOW:
                refollows += action.other in followed
                followed.add(action.other)
            else:
                unfollows_not_followed += action.other not in followed
                followed.discard(action.other)
    assert unfollows_not_followed > commands[Command.UNFOLLOW] * 0.3
    assert refollows > 0

    tweets = [a.text for a in actions if a.text is not None]
    non_ascii = sum(not text.isascii() for text in tweets) / len(tweets)
    assert 0.17 < non_ascii < 0.23
    assert all(1 <= len(text) <= MESSAGE_MAX for text in tweets)
    assert any(len(text) == MESSAGE_MAX for text in tweets)
    assert any("<b>" in text for text in tweets)
    assert any("\\" in text for text in tweets)
    assert any('"' in text for text in tweets)

    names = sorted(registered)
    assert "Roger Histand" in names
    assert sum(" " in name for name in names) > users * 0.8
    assert any(not name.isascii() for name in names)
    assert max(len(name) for name in names) == USERNAME_MAX
    passwords = [a.password for a in actions if a.password is not None]
    assert sum(any(c in p for c in "\"'") and "\\" in p for p in passwords) > users * 0.5

    for action in actions:  # nothing that would read differently in the reference simulator
        for value in (action.username, action.email, action.password, action.text, action.other):
            assert value is None or not any(c in value for c in "\t\r\n\x00")


# --- the expected state and its comparison -----------------------------------------------


def test_expected_state_follows_the_contract_rules() -> None:
    actions = [
        Action.register(1, "a", "a@x", "pw"),
        Action.register(2, "b", "b@x", "pw"),
        Action.register(3, "a", "other@x", "pw2"),  # taken: 400, no change
        Action.tweet(4, "a", "first"),
        Action.tweet(5, "ghost", "404: nothing stored"),
        Action.follow(6, "a", "b"),
        Action.follow(7, "a", "b"),  # twice: one relation
        Action.follow(8, "a", "ghost"),  # 404
        Action.unfollow(9, "b", "a"),  # not following: no-op
        Action.tweet(10, "b", "second"),
        Action.tweet(11, "a", "third"),
        Action.unfollow(12, "ghost", "a"),  # the last action fails, and still sets latest
    ]
    state = expected_state(actions)
    assert state == State(
        users={
            "a": UserState(follows=("b",), messages=("first", "third")),
            "b": UserState(follows=(), messages=("second",)),
        },
        latest=12,
        public=(("a", "first"), ("b", "second"), ("a", "third")),
    )
    assert usernames(actions) == ["a", "b", "ghost"]


def test_differences_name_what_differs() -> None:
    expected = State(
        {"a": UserState(("b",), ("m1", "m2")), "b": UserState((), ())},
        latest=5,
        public=(("a", "m1"), ("a", "m2")),
    )
    assert differences(expected, expected) == []
    actual = State(
        {"a": UserState(("b", "b"), ("m2", "m1")), "c": UserState((), ())},
        latest=4,
        public=(("a", "m2"), ("a", "m1")),
    )
    found = differences(expected, actual)
    assert found[0] == "latest is 4, expected 5"
    assert "users missing: 'b'" in found
    assert "users that should not exist: 'c'" in found
    assert "'a' follows: unexpected 'b'" in found
    assert "'a' messages: item 0 (oldest first) is 'm2', expected 'm1'" in found
    assert any(line.startswith("public timeline: item 0") for line in found)
    # Without order (concurrent runs) the same messages in another order agree.
    unordered = differences(expected, actual, ordered=False)
    assert not any("messages" in line or "public" in line for line in unordered)
    # With a read limit only the newest items are compared.
    newest = State({"a": UserState(("b",), ("m2",)), "b": UserState()}, 5, (("a", "m2"),))
    assert differences(expected, newest, limit=1) == []
    assert differences(expected, State(newest.users, 5, newest.public, read_limit=1)) == []
    assert differences(expected, newest) != []


# --- the requests on the wire ------------------------------------------------------------


@dataclass
class Recorded:
    line: bytes
    headers: dict[str, str]
    body: bytes
    closed_by_client: bool = False


@dataclass
class RecordingServer:
    """A loopback HTTP server that records each connection's one request and answers 204.

    It keeps its side of the connection open after answering, so a client
    that tried to reuse connections would be seen doing it; it notes whether
    the client closed the connection after its one request.
    """

    answer: bool = True
    requests: list[Recorded] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            recorded = Recorded(request_line.encode("latin-1"), headers, body)
            self.requests.append(recorded)
            if not self.answer:
                await reader.read()  # until the client gives up
                return
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            recorded.closed_by_client = await reader.read() == b""
        finally:
            writer.close()

    async def settled(self) -> list[Recorded]:
        """The requests, once every connection has been seen to its end."""
        await asyncio.wait_for(asyncio.gather(*self.handlers), HANG_GUARD)
        return self.requests


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingServer]:
    server_state = RecordingServer()
    server = await asyncio.start_server(server_state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server_state.url = f"http://127.0.0.1:{port}"
    async with server:
        yield server_state


async def test_requests_are_what_the_reference_simulator_sends(recorder: RecordingServer) -> None:
    actions = [
        Action.register(1, "Roger Histand", "roger@example.com", "q\"u'o\\te"),
        Action.tweet(2, "Roger Histand", 'hi 🎉 "there" \\ עברית'),
        Action.follow(3, "Jürgen Müller", "Roger Histand"),
        Action.unfollow(4, "AC/DC Fan & Co+", "Roger Histand"),
    ]
    result = await replay(actions, recorder.url + "/")
    assert result.ok, result.summary()
    assert [o.action_id for o in result.outcomes] == [1, 2, 3, 4]

    requests = await recorder.settled()
    assert len(requests) == len(actions)  # one connection per request
    lines = [request.line for request in requests]
    assert lines == [
        b"POST /register?latest=1 HTTP/1.1",
        b"POST /msgs/Roger%20Histand?latest=2 HTTP/1.1",
        b"POST /fllws/J%C3%BCrgen%20M%C3%BCller?latest=3 HTTP/1.1",
        b"POST /fllws/AC%2FDC%20Fan%20%26%20Co%2B?latest=4 HTTP/1.1",
    ]
    bodies = [request.body for request in requests]
    assert bodies == [
        json.dumps(
            {"username": "Roger Histand", "email": "roger@example.com", "pwd": "q\"u'o\\te"}
        ).encode(),
        json.dumps(
            {"content": 'hi 🎉 "there" \\ עברית'}
        ).encode(),  # \\uXXXX escapes, like requests
        b'{"follow": "Roger Histand"}',
        b'{"unfollow": "Roger Histand"}',
    ]
    assert b"\\ud83c\\udf89" in bodies[1]  # the emoji as a surrogate pair, as json.dumps writes it
    for request in requests:
        assert request.headers["connection"] == "close"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == SIMULATOR_AUTH["Authorization"]
        assert request.closed_by_client  # after its one request


async def test_credentials_are_a_parameter(recorder: RecordingServer) -> None:
    await replay(
        [Action.tweet(1, "a", "x")], recorder.url, credentials=Credentials("me", "sécret:")
    )
    requests = await recorder.settled()
    assert requests[0].headers["authorization"] == "Basic bWU6c8OpY3JldDo="


async def test_timeouts_and_refused_connections_are_recorded_and_the_replay_goes_on() -> None:
    silent = RecordingServer(answer=False)
    server = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
    silent_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    refused_url = f"http://127.0.0.1:{postgres.free_port()}"
    actions = [Action.tweet(1, "a", "x"), Action.tweet(2, "a", "y")]
    async with server:
        timed_out = await replay(actions, silent_url, timeout=0.05)
        server.close()
    refused = await replay(actions, refused_url)
    assert [(o.action_id, o.kind) for o in timed_out.failures] == [
        (1, OutcomeKind.TIMEOUT),
        (2, OutcomeKind.TIMEOUT),
    ]
    assert [(o.action_id, o.kind) for o in refused.failures] == [
        (1, OutcomeKind.CONNECTION_ERROR),
        (2, OutcomeKind.CONNECTION_ERROR),
    ]
    assert "2 x tweet timeout" in timed_out.summary()


# --- replays against the real server, on both databases ----------------------------------


async def test_unexpected_statuses_are_recorded_with_their_kind(live: LiveServer) -> None:
    actions = [
        Action.register(1, "a", "a@x", "pw"),
        Action.tweet(2, "ghost", "nobody"),
        Action.follow(3, "a", "ghost"),
        Action.register(4, "a", "a@x", "pw"),  # taken
        Action.tweet(5, "a", "hello"),
    ]
    result = await replay(actions, live.api_url, timeout=HANG_GUARD)
    assert [(o.action_id, o.kind, o.status) for o in result.failures] == [
        (2, OutcomeKind.UNEXPECTED_STATUS, 404),
        (3, OutcomeKind.UNEXPECTED_STATUS, 404),
        (4, OutcomeKind.UNEXPECTED_STATUS, 400),
    ]
    assert "already taken" in result.failures[2].detail
    actual = await read_state(live.api_url, usernames(actions))
    assert differences(expected_state(actions), actual) == []
    # The reference simulator tolerates a 400 on register (a name already taken).
    again = await replay(
        actions[3:4], live.api_url, timeout=HANG_GUARD, expected=REFERENCE_EXPECTED
    )
    assert again.ok


async def test_an_abandoned_registration_still_completes(live: LiveServer) -> None:
    """A client that times out must not leave ``latest`` saying done while the user is missing.

    Quart cancels a handler when its client disconnects; the API's connection
    class never does, once the body has arrived. Each registration here is
    abandoned after 1 ms of waiting for the answer. One dropped before the API
    started on it leaves no trace (``latest`` does not reach its id), which is
    consistent too; every one whose id ``latest`` reached must have created its
    user.
    """
    names = [f"impatient {i}" for i in range(1, 6)]
    reached: list[str] = []
    async with new_client() as client, httpx.AsyncClient(trust_env=False) as reader:
        for action_id, name in enumerate(names, start=1):
            request = build_request(
                Action.register(action_id, name, "x@y", "pw"), SIMULATOR_CREDENTIALS
            )
            with contextlib.suppress(httpx.ReadTimeout):
                await client.post(
                    live.api_url + request.path,
                    content=request.body,
                    headers=request.headers,
                    timeout=httpx.Timeout(HANG_GUARD, read=0.001),
                )
            for _ in range(int(HANG_GUARD / 0.05)):  # wait (bounded) for the server to settle
                latest = (await reader.get(f"{live.api_url}/latest")).json()["latest"]
                if latest == action_id:
                    reached.append(name)
                    break
                await asyncio.sleep(0.05)
    assert reached, "no abandoned registration reached the API at all"
    state = await read_state(live.api_url, names)
    assert [name for name in reached if name not in state.users] == []


@pytest.mark.slow
async def test_replay_of_a_synthetic_scenario(live: LiveServer, backend: str) -> None:
    """3,000 actions over 60 users, sent as the simulator sends them; then the whole state.

    Every action must get its 204, and each user's follows and messages, the
    public timeline and ``latest`` must be what the scenario implies.
    """
    actions = generate(users=60, actions=3000, seed=2024)
    result = await replay(actions, live.api_url, timeout=HANG_GUARD)
    slow = sum(o.latency > REFERENCE_TIMEOUT for o in result.outcomes)
    print(
        f"\n[{backend}] {result.summary()}\n"
        f"  {slow} action(s) took longer than the simulator's {REFERENCE_TIMEOUT} s timeout"
    )
    assert [o.describe() for o in result.failures] == []
    assert result.failure_counts() == Counter()
    assert {o.command for o in result.outcomes} == set(Command)

    expected = expected_state(actions)
    actual = await read_state(live.api_url, usernames(actions))
    assert differences(expected, actual) == []
    assert actual.latest == 3000
    assert len(actual.users) == 60
