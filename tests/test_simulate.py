"""``minitwit simulate``: the load generator, run as an operator runs it.

The command runs in a subprocess against the real ``minitwit serve`` (the
``live`` fixture, on SQLite and PostgreSQL) or against small loopback servers
that misbehave on purpose (never answer, answer in odd but legal framings,
answer garbage). Scenarios are small so the file stays quick. Nothing here
asserts how fast anything is: the simulator's 0.3 s timeout is replaced by a
generous one wherever the server is expected to answer, so a busy machine
cannot fail a test; only the tests about timeouts use a short one, against a
server that never answers at all.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.simulator.generate import generate
from app.simulator.runner import dependencies
from app.simulator.scenario import Action, Command, write_scenario
from app.simulator.transport import Client, Target, TransportError
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer
from tests.processes import run_minitwit

HANG_GUARD = "10"  # --timeout where an answer is expected: a bound against hangs only


async def simulate(*args: str) -> tuple[int, dict[str, Any] | None, str, str]:
    """Run ``minitwit simulate ARGS --json``: exit code, the JSON report, stdout, stderr."""
    result = await asyncio.to_thread(run_minitwit, "simulate", *args, "--json")
    report = None
    if result.stdout.strip():
        report = json.loads(result.stdout)
    return result.returncode, report, result.stdout, result.stderr


async def api_get(url: str) -> Any:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        response = await client.get(url, headers=SIMULATOR_AUTH)
        assert response.status_code == 200, response.text
        return response.json()


def commands(actions: list[Action]) -> dict[str, int]:
    return {command.value: n for command, n in Counter(a.command for a in actions).items()}


def reported_counts(report: dict[str, Any]) -> dict[str, int]:
    return {name: row["n"] for name, row in report["latency_ms"].items() if name in set(Command)}


# --- against the real server ----------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 8], ids=["sequential", "concurrent"])
async def test_a_generated_scenario_replays_cleanly_and_verifies(
    live: LiveServer, workers: int
) -> None:
    args = ("--generate", "--users", "12", "--actions", "240", "--seed", "5")
    code, report, stdout, stderr = await simulate(
        *args,
        "--base-url",
        live.api_url,
        "--workers",
        str(workers),
        "--timeout",
        HANG_GUARD,
        "--verify",
    )
    assert code == 0, stdout + stderr
    assert report is not None
    actions = generate(12, 240, 5)
    assert report["ok"] is True
    assert report["actions"] == 240
    assert report["workers"] == workers
    assert report["unexpected"] == 0
    assert report["unexpected_by_kind"] == []
    assert reported_counts(report) == commands(actions)
    assert report["latency_ms"]["all"]["n"] == 240
    assert report["latency_ms"]["all but register"]["n"] == 240 - 12
    for row in report["latency_ms"].values():
        assert 0 < row["p50"] <= row["p95"] <= row["p99"] <= row["max"]
    assert report["actions_per_s"] > 0
    assert report["verification"] == {"ok": True, "users": 12, "differences": [], "error": None}
    # What the command said it did is what the API shows.
    latest = (await api_get(f"{live.api_url}/latest"))["latest"]
    if workers == 1:
        assert latest == 240
    else:
        assert 1 <= latest <= 240
    public = await api_get(f"{live.api_url}/msgs?no=1000")
    assert len(public) == commands(actions)["tweet"]


async def test_the_text_report_has_the_table_and_the_verdict(live: LiveServer) -> None:
    result = await asyncio.to_thread(
        run_minitwit,
        "simulate",
        "--generate",
        "--users",
        "5",
        "--actions",
        "60",
        "--base-url",
        live.api_url,
        "--timeout",
        HANG_GUARD,
        "--verify",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"minitwit simulate: 60 actions against {live.api_url}"
    assert any(line.startswith("mode: sequential, like the simulator") for line in lines)
    rows = {line.split()[0]: line.split() for line in lines if line.split()}
    counts = commands(generate(5, 60, 0))
    for command, count in counts.items():
        assert rows[command][1] == str(count)  # the n column
    assert "60 as expected, 0 unexpected" in result.stdout
    assert "verification: the API's state matches the scenario (5 users" in result.stdout
    assert lines[-1] == "result: OK"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


async def test_a_tweet_by_an_unregistered_user_is_reported_by_kind(
    live: LiveServer, tmp_path: Path
) -> None:
    scenario = tmp_path / "ghost.tsv"
    write_scenario(
        [
            Action.register(1, "Roger Histand", "roger@example.com", 'p"w\\d'),
            Action.tweet(2, "Ghost Writer", "nobody registered me"),
            Action.tweet(3, "Roger Histand", "hello"),
            Action.follow(4, "Roger Histand", "Ghost Writer"),
            Action.tweet(5, "Ghost Writer", "still not registered"),
        ],
        scenario,
    )
    code, report, stdout, stderr = await simulate(
        str(scenario), "--base-url", live.api_url, "--timeout", HANG_GUARD
    )
    assert code == 1, stdout + stderr
    assert report is not None
    assert report["ok"] is False
    assert report["unexpected"] == 3
    groups = {(g["command"], g["kind"], g["status"]): g for g in report["unexpected_by_kind"]}
    assert set(groups) == {
        ("tweet", "unexpected status", 404),
        ("follow", "unexpected status", 404),
    }
    assert groups["tweet", "unexpected status", 404]["count"] == 2
    assert groups["tweet", "unexpected status", 404]["example"]["action"] == 2
    assert "Ghost Writer" in groups["tweet", "unexpected status", 404]["example"]["detail"]
    assert groups["follow", "unexpected status", 404]["count"] == 1

    # Again, as text: now the registration is a taken name too.
    text = await asyncio.to_thread(
        run_minitwit, "simulate", str(scenario), "--base-url", live.api_url, "--timeout", "10"
    )
    assert text.returncode == 1
    assert "2 x tweet: unexpected status 404" in text.stdout
    assert "1 x follow: unexpected status 404" in text.stdout
    assert "1 x register: unexpected status 400" in text.stdout
    assert "The username is already taken" in text.stdout
    assert text.stdout.splitlines()[-1] == "result: FAILED (4 unexpected outcome(s))"


async def test_concurrent_mode_keeps_the_answers_a_sequential_replay_gets(
    live: LiveServer, tmp_path: Path
) -> None:
    """A tweet before its author's registration is a 404 however many workers run,
    and the ones after it are 204s: the schedule keeps the file's meaning."""
    actions = [
        Action.register(1, "a", "a@x", "pw"),
        Action.tweet(2, "b", "too early"),
        Action.follow(3, "a", "b"),
        Action.register(4, "b", "b@x", "pw"),
        *(Action.tweet(5 + i, "b", f"on time {i}") for i in range(20)),
        Action.follow(25, "a", "b"),
        Action.unfollow(26, "b", "a"),
    ]
    scenario = tmp_path / "order.tsv"
    write_scenario(actions, scenario)
    code, report, stdout, stderr = await simulate(
        str(scenario), "--base-url", live.api_url, "--workers", "16", "--timeout", HANG_GUARD
    )
    assert code == 1, stdout + stderr
    assert report is not None
    assert [(g["command"], g["status"], g["count"]) for g in report["unexpected_by_kind"]] == [
        ("follow", 404, 1),
        ("tweet", 404, 1),
    ]
    examples = {g["command"]: g["example"]["action"] for g in report["unexpected_by_kind"]}
    assert examples == {"tweet": 2, "follow": 3}
    mine = await api_get(f"{live.api_url}/msgs/b?no=100")
    assert [m["content"] for m in mine] == [f"on time {i}" for i in reversed(range(20))]
    follows = await api_get(f"{live.api_url}/fllws/a")
    assert follows == {"follows": ["b"]}


async def test_the_api_under_api_on_the_web_port_works_too(live: LiveServer) -> None:
    code, report, stdout, stderr = await simulate(
        "--generate",
        "--users",
        "3",
        "--actions",
        "20",
        "--base-url",
        f"{live.web_url}/api/",
        "--timeout",
        HANG_GUARD,
        "--verify",
    )
    assert code == 0, stdout + stderr
    assert report is not None
    assert report["verification"]["ok"] is True


async def test_verification_reports_a_state_that_is_not_the_scenarios(live: LiveServer) -> None:
    """Replayed twice into the same database: every register is a taken name (accepted
    with --allow-taken-usernames), and every message is there twice."""
    args = ("--generate", "--users", "3", "--actions", "30", "--base-url", live.api_url)
    first, _, stdout, stderr = await simulate(*args, "--timeout", HANG_GUARD)
    assert first == 0, stdout + stderr
    code, report, stdout, stderr = await simulate(
        *args, "--timeout", HANG_GUARD, "--allow-taken-usernames", "--verify"
    )
    assert code == 1, stdout + stderr
    assert report is not None
    assert report["unexpected"] == 0  # the 400s were allowed
    verification = report["verification"]
    assert verification["ok"] is False
    assert verification["error"] is None
    assert any("messages" in difference for difference in verification["differences"])


# --- against servers that are not there or misbehave ----------------------------------------


async def test_no_server_means_connection_errors_and_a_failure() -> None:
    port = postgres.free_port()  # nothing listens on it
    code, report, stdout, stderr = await simulate(
        "--generate", "--users", "3", "--actions", "15", "--base-url", f"http://127.0.0.1:{port}"
    )
    assert code == 1, stdout + stderr
    assert report is not None
    assert report["unexpected"] == 15
    kinds = Counter()
    for group in report["unexpected_by_kind"]:
        assert group["kind"] == "connection error"
        assert group["status"] is None
        assert str(port) in group["example"]["detail"]
        kinds[group["command"]] += group["count"]
    assert kinds == commands(generate(3, 15, 0))


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and reads, but never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


async def test_a_server_that_never_answers_gives_timeouts(silent_server: int) -> None:
    code, report, stdout, stderr = await simulate(
        "--generate",
        "--users",
        "2",
        "--actions",
        "4",
        "--base-url",
        f"http://127.0.0.1:{silent_server}",
        "--timeout",
        "0.2",
        "--workers",
        "2",
    )
    assert code == 1, stdout + stderr
    assert report is not None
    assert report["unexpected"] == 4
    assert {g["kind"] for g in report["unexpected_by_kind"]} == {"timeout"}
    assert report["latency_ms"]["all"]["p50"] >= 200  # it did wait the timeout, no less


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
        (
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nnot\r\n6\r\n found\r\n0\r\n\r\n",
            404,
            b"not found",
        ),
        (
            b"HTTP/1.0 500 Oops\r\n\r\nuntil the connection closes",
            500,
            b"until the connection closes",
        ),
    ],
    ids=["no body", "content-length", "chunked", "until close"],
)
async def test_the_client_reads_every_framing_of_an_answer(
    answer: bytes, status: int, body: bytes
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for i in range(0, len(answer), 7):  # in pieces, as a network may deliver it
            writer.write(answer[i : i + 7])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = Client(Target.parse(f"http://127.0.0.1:{port}"))
        payload = client.target.payload("POST", "/msgs/a?latest=1", {}, b"{}")
        response = await client.exchange(payload, 5.0)
    finally:
        server.close()
        await server.wait_closed()
    assert (response.status, response.body) == (status, body)


async def test_an_answer_that_is_not_http_is_a_connection_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = Client(Target.parse(f"http://127.0.0.1:{port}"))
        with pytest.raises(TransportError, match="not an HTTP response"):
            await client.exchange(client.target.payload("GET", "/latest", {}), 5.0)
    finally:
        server.close()
        await server.wait_closed()


def test_the_request_on_the_wire_is_the_simulators() -> None:
    target = Target.parse("http://example.test:8080/api/")
    payload = target.payload(
        "POST",
        "/msgs/Roger%20Histand?latest=7",
        {"Connection": "close", "Content-Type": "application/json"},
        b'{"content": "hi"}',
    )
    head, body = payload.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/msgs/Roger%20Histand?latest=7 HTTP/1.1"
    assert "Host: example.test:8080" in lines
    assert "Connection: close" in lines
    assert "Content-Length: 17" in lines
    assert body == b'{"content": "hi"}'


# --- bad input ------------------------------------------------------------------------------


async def test_a_malformed_scenario_is_a_clear_error(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.tsv"
    scenario.write_text("1\t0\t0\tregister\ta\ta@x\tpw\n2\t0\t0\tretweet\ta\thi\n")
    code, report, stdout, stderr = await simulate(str(scenario))
    assert code == 2
    assert report is None
    assert stdout == ""
    assert stderr.startswith(f"minitwit simulate: {scenario}: line 2: unknown command 'retweet'")
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either a SCENARIO file or --generate"),
        (("some.tsv", "--generate"), "give either a SCENARIO file or --generate"),
        (("/nonexistent/scenario.tsv",), "cannot read /nonexistent/scenario.tsv"),
        (("--generate", "--users", "1"), "at least 2 users"),
        (("--generate", "--base-url", "ftp://host"), "not an http:// or https:// URL"),
        (("--generate", "--workers", "0"), "workers must be at least 1"),
        (("--generate", "--timeout", "0"), "the timeout must be positive"),
    ],
)
async def test_bad_usage_exits_2(args: tuple[str, ...], message: str) -> None:
    code, _, _, stderr = await simulate(*args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr


# --- the schedule ---------------------------------------------------------------------------


def test_the_schedule_orders_what_depends_and_nothing_else() -> None:
    actions = [
        Action.register(1, "a", "a@x", "pw"),  # 0
        Action.register(2, "b", "b@x", "pw"),  # 1
        Action.tweet(3, "c", "before c exists"),  # 2: reads c, which is not registered yet
        Action.tweet(4, "a", "first"),  # 3: after a's registration
        Action.follow(5, "b", "a"),  # 4: after both registrations
        Action.tweet(6, "a", "second"),  # 5: after a's previous action
        Action.register(7, "c", "c@x", "pw"),  # 6: after the 404 that named c
        Action.unfollow(8, "a", "c"),  # 7: after a's last action and c's registration
    ]
    assert dependencies(actions) == [[], [], [], [0], [0, 1], [0, 3], [2], [0, 5, 6]]


def test_the_schedule_of_a_generated_scenario_is_per_user_and_after_registration() -> None:
    actions = generate(30, 1500, 9)
    waits = dependencies(actions)
    registered_at = {a.username: i for i, a in enumerate(actions) if a.command is Command.REGISTER}
    previous: dict[str, int] = {}
    for index, action in enumerate(actions):
        assert all(before < index for before in waits[index])
        if action.command is Command.REGISTER:
            assert waits[index] == []  # the generator registers each name once, before use
            continue
        assert registered_at[action.username] in waits[index]
        if action.other is not None:
            assert registered_at[action.other] in waits[index]
        if action.username in previous:
            assert previous[action.username] in waits[index]
        previous[action.username] = index
