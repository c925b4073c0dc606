"""Faults that must lose nothing, on a PostgreSQL cluster each test owns.

Every test here starts its own throwaway PostgreSQL cluster (``initdb`` +
``pg_ctl``, tests/postgres.py) so that it can stop, restart, kill and lock it
without touching anyone else's database, and a real ``minitwit serve`` on it.
Requests are the simulator's (``app.simulator.replay``: built the same way,
one at a time, ``Connection: close``).

- PostgreSQL restarted, and separately stopped for 10 s, in the middle of a
  replay: every request answers promptly, a failure is a 503 with a JSON
  ``error_msg``, ``/health`` says 503 while the database is away and 200
  again within 5 s of its return, and every action that got a 2xx is in the
  database afterwards (and nothing that was never sent).
- The app SIGKILLed while a write is provably inside PostgreSQL (held there
  by a lock): no partial rows, the in-flight action is stored at most once,
  and after a restart the replay goes on to the exact expected state.
- A slow database (a table locked by another session): requests answer 503
  within a bound set by ``MINITWIT_DB_TIMEOUT`` however many pile in, and the
  pool has leaked no connection once the lock is gone.
- Schemathesis against the served OpenAPI document: thousands of generated
  requests to every operation, no 5xx, no response that breaks the document.

Timed assertions are hang guards that encode the requirements, with a margin
for a loaded two-core machine (other suites run alongside): 0.3 s fail-fast
(the simulator's timeout) + 0.3 s margin, 5 s recovery + 1 s margin. What was
measured is printed (``pytest -s``) and reported in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from app.db import migrate
from app.simulator.expected import differences, expected_state, usernames
from app.simulator.generate import generate
from app.simulator.replay import (
    EXPECTED,
    SIMULATOR_CREDENTIALS,
    Outcome,
    OutcomeKind,
    build_request,
    new_client,
    read_state,
    send,
)
from app.simulator.scenario import Action, Command
from tests import postgres
from tests.conftest import ROOT, SIMULATOR_AUTH, LiveServer, make_settings, start_server
from tests.processes import HANG_GUARD

pytestmark = pytest.mark.slow

SIMULATOR_TIMEOUT = 0.3
FAIL_FAST_GUARD = SIMULATOR_TIMEOUT + 0.3  # the contract's bound + margin for a loaded box
RECOVERY = 5.0
RECOVERY_GUARD = RECOVERY + 1.0
DB_TIMEOUT = 0.25  # MINITWIT_DB_TIMEOUT's default, the production setting
# The app's own settings in these tests: production's timeouts, less logging.
PRODUCTION_TIMEOUTS = {"MINITWIT_DB_TIMEOUT": str(DB_TIMEOUT), "MINITWIT_LOG_LEVEL": "WARNING"}
OUTAGE_BODY_KEYS = {"status", "error_msg"}


# --- a PostgreSQL cluster the test owns --------------------------------------


@dataclass
class OwnedCluster:
    admin_url: str
    data_dir: Path
    port: int
    run_as: list[str] = field(default_factory=list)

    def pg_ctl(self, *args: str) -> None:
        pg_ctl = postgres._pg_binary("pg_ctl")
        assert pg_ctl is not None
        # stdout to /dev/null, never a pipe: a postmaster started by pg_ctl
        # inherits it and would keep a captured pipe open forever.
        subprocess.run(
            [*self.run_as, pg_ctl, "-D", str(self.data_dir), "-w", "-t", "60", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    @property
    def _start_args(self) -> list[str]:
        options = f"-p {self.port} -k {self.data_dir.parent} -c listen_addresses=127.0.0.1"
        return ["-l", str(self.data_dir.parent / "log"), "-o", options]

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "stop")

    def start(self) -> None:
        self.pg_ctl(*self._start_args, "start")

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", *self._start_args, "restart")

    def is_running(self) -> bool:
        pg_ctl = postgres._pg_binary("pg_ctl")
        assert pg_ctl is not None
        status = subprocess.run(
            [*self.run_as, pg_ctl, "-D", str(self.data_dir), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return status.returncode == 0


async def _fetchval(url: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


@pytest.fixture
def cluster() -> Iterator[OwnedCluster]:
    if postgres._pg_binary("initdb") is None or postgres._pg_binary("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl are not installed")
    with postgres.throwaway_cluster() as admin:
        data_dir = Path(str(asyncio.run(_fetchval(admin, "SHOW data_directory"))))
        port = int(urlsplit(admin).port or 5432)
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        owned = OwnedCluster(admin, data_dir, port, run_as)
        try:
            yield owned
        finally:
            if not owned.is_running():  # a failed test may leave it stopped
                owned.start()


@pytest.fixture
def database(cluster: OwnedCluster) -> str:
    url = asyncio.run(postgres.create_database(cluster.admin_url))
    asyncio.run(migrate(make_settings(url), progress=lambda _: None))
    return url


def serve(database: str, tmp_path: Path, servers: list[LiveServer], **env: str) -> LiveServer:
    server = start_server(database, tmp_path, env={**PRODUCTION_TIMEOUTS, **env})
    servers.append(server)
    return server


# --- the simulator's requests, with timestamps --------------------------------


@dataclass(frozen=True)
class Sent:
    action: Action
    outcome: Outcome
    at: float  # time.monotonic() when it was sent
    body: str  # the response body, for failures


def is_json_outage(body: str) -> bool:
    """The contract's error shape for a database outage: JSON, status 503, an error_msg."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and set(data) == OUTAGE_BODY_KEYS
        and data["status"] == 503
        and isinstance(data["error_msg"], str)
        and bool(data["error_msg"])
    )


async def send_action(client: httpx.AsyncClient, base_url: str, action: Action) -> Sent:
    at = time.monotonic()
    outcome = await send(
        client,
        base_url,
        build_request(action, SIMULATOR_CREDENTIALS),
        timeout=HANG_GUARD,  # latencies are checked by the tests, against their own bounds
        expected=EXPECTED[action.command],
    )
    return Sent(action, outcome, at, outcome.detail)


def registrations_first(actions: list[Action]) -> list[Action]:
    """The same scenario with every registration moved to the front, ids renumbered.

    ``generate`` spreads registrations over the first half; the outage tests
    start their fault right after the last one, so that no registration fails
    and makes the rest of that user's actions 404s.
    """
    ordered = sorted(actions, key=lambda action: action.command is not Command.REGISTER)
    return [dataclasses.replace(action, id=i) for i, action in enumerate(ordered, start=1)]


def last_registration(actions: list[Action]) -> int:
    return max(i for i, action in enumerate(actions) if action.command is Command.REGISTER)


# --- what the database holds ---------------------------------------------------


@dataclass
class DbState:
    users: set[str]
    messages: Counter[tuple[str, str]]
    follows: set[tuple[str, str]]
    latest: int


async def db_state(url: str) -> DbState:
    conn = await asyncpg.connect(url)
    try:
        users = {row["username"] for row in await conn.fetch('SELECT username FROM "user"')}
        messages = Counter(
            (row["username"], row["text"])
            for row in await conn.fetch(
                'SELECT u.username, m.text FROM message m JOIN "user" u ON u.id = m.author_id'
            )
        )
        follows = {
            (row["who"], row["whom"])
            for row in await conn.fetch(
                "SELECT a.username AS who, b.username AS whom FROM follower f "
                'JOIN "user" a ON a.id = f.who_id JOIN "user" b ON b.id = f.whom_id'
            )
        }
        latest = int(await conn.fetchval("SELECT value FROM latest WHERE id = 1"))
        return DbState(users, messages, follows, latest)
    finally:
        await conn.close()


async def partial_rows(url: str) -> dict[str, int]:
    """Rows that only a half-done write could leave; all counts must be 0."""
    checks = {
        "follower rows without both users": "SELECT count(*) FROM follower f "
        'LEFT JOIN "user" a ON a.id = f.who_id LEFT JOIN "user" b ON b.id = f.whom_id '
        "WHERE a.id IS NULL OR b.id IS NULL",
        "messages without an author": 'SELECT count(*) FROM message m LEFT JOIN "user" u '
        "ON u.id = m.author_id WHERE u.id IS NULL",
        "messages without text or date": "SELECT count(*) FROM message "
        "WHERE text IS NULL OR text = '' OR pub_date IS NULL",
        "users without a password hash": 'SELECT count(*) FROM "user" '
        "WHERE pw_hash NOT LIKE '$argon2id$%' OR email = ''",
        "latest rows": "SELECT count(*) - 1 FROM latest",
    }
    conn = await asyncpg.connect(url)
    try:
        return {what: int(await conn.fetchval(query)) for what, query in checks.items()}
    finally:
        await conn.close()


def check_acknowledged_actions_persisted(sent: list[Sent], state: DbState) -> None:
    """Every 2xx action is in the database; nothing is there that was not sent.

    An action that failed (503, timeout) may or may not have happened: a
    statement cancelled by its timeout can have committed just before. So
    for those the database may show either outcome, and for a follow pair
    any of the actions on it since the last acknowledged one may be the one
    that counts.
    """
    ok = [s.action for s in sent if s.outcome.kind is OutcomeKind.OK]
    unknown = [s.action for s in sent if s.outcome.kind is not OutcomeKind.OK]
    assert all(
        s.outcome.status in {503, None} for s in sent if s.outcome.kind is not OutcomeKind.OK
    ), "only outages may fail here"

    registered = {a.username for a in ok if a.command is Command.REGISTER}
    maybe_registered = {a.username for a in unknown if a.command is Command.REGISTER}
    assert registered <= state.users, f"acknowledged users missing: {registered - state.users}"
    assert state.users <= registered | maybe_registered

    acknowledged = Counter((a.username, a.text) for a in ok if a.command is Command.TWEET)
    in_doubt = Counter((a.username, a.text) for a in unknown if a.command is Command.TWEET)
    lost = acknowledged - state.messages
    assert not lost, f"{sum(lost.values())} acknowledged messages are missing: {list(lost)[:3]}"
    phantom = state.messages - acknowledged - in_doubt
    assert not phantom, f"messages nobody sent: {list(phantom)[:3]}"

    # Follows: replay each pair's history; after the last acknowledged action
    # on a pair, any later failed one may or may not have taken effect.
    possible: dict[tuple[str, str], set[bool]] = {}
    for s in sent:
        action = s.action
        if action.command not in {Command.FOLLOW, Command.UNFOLLOW}:
            continue
        assert action.other is not None
        pair = (action.username, action.other)
        effect = action.command is Command.FOLLOW
        if s.outcome.kind is OutcomeKind.OK:
            possible[pair] = {effect}
        else:
            possible.setdefault(pair, {False}).add(effect)
    for pair, outcomes in possible.items():
        assert (pair in state.follows) in outcomes, f"follow {pair}: expected one of {outcomes}"
    assert state.follows <= set(possible), "a follow nobody asked for"


# --- PostgreSQL restarted / stopped mid-replay ---------------------------------


@dataclass
class Timeline:
    fault_started: float = 0.0
    database_back: float = 0.0
    health: list[tuple[float, int | None, float]] = field(default_factory=list)


async def poll_health(url: str, timeline: Timeline, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=FAIL_FAST_GUARD * 2) as client:
        while not stop.is_set():
            at = time.monotonic()
            try:
                status: int | None = (await client.get(f"{url}/health")).status_code
            except httpx.HTTPError:
                status = None
            timeline.health.append((at, status, time.monotonic() - at))
            await asyncio.sleep(0.05)


async def replay_through_fault(
    server: LiveServer, actions: list[Action], fault: Callable[[Timeline], None]
) -> tuple[list[Sent], Timeline]:
    """Replay one action every ~10 ms; start ``fault`` (in a thread) after the registrations.

    Stops sending when the scenario ends, or a second past the recovery guard
    after the database is back.
    """
    timeline = Timeline()
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(server.api_url, timeline, stop))
    sent: list[Sent] = []
    fault_task: asyncio.Future[None] | None = None
    start_fault_at = last_registration(actions) + 1
    async with new_client() as client:
        for index, action in enumerate(actions):
            if index == start_fault_at:
                fault_task = asyncio.ensure_future(asyncio.to_thread(fault, timeline))
            sent.append(await send_action(client, server.api_url, action))
            if (
                timeline.database_back
                and time.monotonic() > timeline.database_back + RECOVERY_GUARD + 1
            ):
                break
            await asyncio.sleep(0.01)
    assert fault_task is not None
    await fault_task
    stop.set()
    await poller
    return sent, timeline


def _restart(cluster: OwnedCluster) -> Callable[[Timeline], None]:
    def fault(timeline: Timeline) -> None:
        time.sleep(0.5)
        timeline.fault_started = time.monotonic()
        cluster.restart()
        timeline.database_back = time.monotonic()

    return fault


def _stop_for_10_s(cluster: OwnedCluster) -> Callable[[Timeline], None]:
    def fault(timeline: Timeline) -> None:
        time.sleep(0.5)
        timeline.fault_started = time.monotonic()
        cluster.stop("fast")
        time.sleep(10)
        cluster.start()
        timeline.database_back = time.monotonic()

    return fault


@pytest.mark.parametrize("fault", ["restart", "stopped for 10 s"])
def test_postgres_outage_mid_replay_fails_fast_recovers_and_loses_nothing(
    cluster: OwnedCluster,
    database: str,
    tmp_path: Path,
    servers: list[LiveServer],
    fault: str,
) -> None:
    server = serve(database, tmp_path, servers)
    actions = registrations_first(generate(users=20, actions=2500, seed=5))
    make_fault = _restart if fault == "restart" else _stop_for_10_s
    sent, timeline = asyncio.run(replay_through_fault(server, actions, make_fault(cluster)))

    failures = [s for s in sent if s.outcome.kind is not OutcomeKind.OK]
    during = [s for s in sent if timeline.fault_started <= s.at <= timeline.database_back]
    latencies = sorted(s.outcome.latency for s in during) or [0.0]
    back = [(at, status) for at, status, _ in timeline.health if at >= timeline.database_back]
    first_healthy = next((at for at, status in back if status == 200), None)
    first_2xx = next(
        (s.at for s in sent if s.at >= timeline.database_back and s.outcome.kind is OutcomeKind.OK),
        None,
    )
    print(
        f"\n{fault}: database away {timeline.database_back - timeline.fault_started:.2f} s; "
        f"{len(sent)} actions, {len(during)} while it was away, {len(failures)} failed "
        f"({Counter(s.outcome.status for s in failures)}); latency while away: "
        f"max {latencies[-1] * 1000:.0f} ms; /health 503s: "
        f"{sum(1 for _, status, _ in timeline.health if status == 503)}; "
        f"/health 200 again after {((first_healthy or 0) - timeline.database_back):.3f} s, "
        f"first 2xx action after {((first_2xx or 0) - timeline.database_back):.3f} s; "
        "slowest (s after the fault began, status, ms): "
        + ", ".join(
            f"({s.at - timeline.fault_started:+.2f}, {s.outcome.status}, "
            f"{s.outcome.latency * 1000:.0f})"
            for s in sorted(sent, key=lambda s: -s.outcome.latency)[:3]
        )
    )

    # Every failure is the contract's JSON 503, not a timeout, a 500 or a reset,
    # and nothing hangs: every request sent while the database was away (or
    # failing anyway) answered within the guard, and so did every /health.
    for s in failures:
        assert s.outcome.kind is OutcomeKind.UNEXPECTED_STATUS, s.outcome.describe()
        assert s.outcome.status == 503, s.outcome.describe()
        assert is_json_outage(s.body), s.body
    for s in during + failures:
        assert s.outcome.latency < FAIL_FAST_GUARD, s.outcome.describe()
    assert all(latency < FAIL_FAST_GUARD for _, _, latency in timeline.health)
    if fault == "stopped for 10 s":
        # Ten seconds without a database cannot go unnoticed.
        assert sum(1 for s in failures if timeline.fault_started <= s.at) >= 100
        assert any(
            status == 503
            for at, status, _ in timeline.health
            if timeline.fault_started <= at <= timeline.database_back
        ), "/health never reported the outage"

    # Recovery, by itself: /health is 200 and actions succeed again soon after.
    assert first_healthy is not None, "/health never came back to 200"
    assert first_healthy - timeline.database_back < RECOVERY_GUARD
    assert first_2xx is not None, "no action succeeded after the database came back"
    assert first_2xx - timeline.database_back < RECOVERY_GUARD
    after = [s for s in sent if s.at >= timeline.database_back + RECOVERY_GUARD]
    assert after, "the replay ended before recovery could be checked"
    assert all(s.outcome.kind is OutcomeKind.OK for s in after)

    # Nothing acknowledged was lost.
    state = asyncio.run(db_state(database))
    check_acknowledged_actions_persisted(sent, state)
    assert state.latest == sent[-1].action.id
    partial = asyncio.run(partial_rows(database))
    assert not any(partial.values()), partial


# --- the app SIGKILLed mid-write -------------------------------------------------


async def _backends(url: str, admin: str) -> list[asyncpg.Record]:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin)
    try:
        return list(
            await conn.fetch(
                "SELECT pid, state, wait_event_type, query FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        )
    finally:
        await conn.close()


WRITES = {
    # command: (table to lock, how its rows are written)
    Command.TWEET: ("message", "one statement: author lookup, INSERT and latest"),
    Command.FOLLOW: ("follower", "one statement: both lookups, INSERT ON CONFLICT and latest"),
}


HEALTHCHECK = ROOT / "docker" / "healthcheck.py"


def run_healthcheck(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The image's health check (docker/healthcheck.py) against ``server``'s two ports."""
    env = {
        **os.environ,
        "MINITWIT_WEB_PORT": str(urlsplit(server.web_url).port),
        "MINITWIT_API_PORT": str(urlsplit(server.api_url).port),
    }
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args], env=env, capture_output=True, text=True
    )


def test_the_swarm_health_check_keeps_a_replica_whose_database_is_away(
    cluster: OwnedCluster, database: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    """Swarm replaces an unhealthy task; the image's own (readiness) check fails while
    the database is away, so the stack asks only whether the server answers."""
    server = serve(database, tmp_path, servers)
    assert run_healthcheck(server).returncode == 0
    assert run_healthcheck(server, "--live").returncode == 0
    cluster.stop()
    try:
        ready = run_healthcheck(server)
        assert ready.returncode == 1
        assert "HTTP 503" in ready.stdout
        assert "unreachable" in ready.stdout
        assert run_healthcheck(server, "--live").returncode == 0
    finally:
        cluster.start()
    server.stop()
    gone = run_healthcheck(server, "--live")
    assert gone.returncode == 1, gone.stdout  # nothing answers: not alive


@pytest.mark.parametrize("command", list(WRITES), ids=lambda c: str(c.value))
def test_app_sigkilled_mid_write_leaves_no_partial_rows_and_the_replay_continues(
    cluster: OwnedCluster,
    database: str,
    tmp_path: Path,
    servers: list[LiveServer],
    command: Command,
) -> None:
    table, _ = WRITES[command]
    # A statement timeout long enough to see the write waiting and kill the
    # app under it (production's 0.25 s would race the test).
    server = serve(database, tmp_path, servers, MINITWIT_DB_TIMEOUT="5")
    actions = generate(users=15, actions=400, seed=11)
    start = last_registration(actions) + 1
    victim_index = next(i for i in range(start, len(actions)) if actions[i].command is command)

    async def scenario() -> tuple[list[Sent], Sent, LiveServer]:
        sent: list[Sent] = []
        async with new_client() as client:
            for action in actions[:victim_index]:
                sent.append(await send_action(client, server.api_url, action))
        assert all(s.outcome.kind is OutcomeKind.OK for s in sent)

        # Hold the table so that the write waits inside PostgreSQL; reads go on.
        lock = await asyncpg.connect(database)
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
        victim = actions[victim_index]
        async with new_client() as client:
            in_flight = asyncio.ensure_future(send_action(client, server.api_url, victim))
            deadline = time.monotonic() + HANG_GUARD
            while not any(
                row["wait_event_type"] == "Lock" and f'"{table}"' in row["query"]
                for row in await _backends(database, cluster.admin_url)
            ):
                assert time.monotonic() < deadline, "the write never reached PostgreSQL"
                assert not in_flight.done(), (await in_flight).outcome.describe()
                await asyncio.sleep(0.01)
            # The write is inside PostgreSQL, waiting for the lock: kill the app.
            server.process.kill()
            server.process.wait(HANG_GUARD)
            killed = await in_flight
        await transaction.rollback()
        await lock.close()

        # The dead app's backend finishes or aborts its statement, then goes.
        deadline = time.monotonic() + HANG_GUARD
        while await _backends(database, cluster.admin_url):
            assert time.monotonic() < deadline, "the dead app's connections linger"
            await asyncio.sleep(0.05)
        return sent, killed, server

    sent, killed, _ = asyncio.run(scenario())
    assert killed.outcome.kind is OutcomeKind.CONNECTION_ERROR, killed.outcome.describe()

    # No partial rows; the in-flight action is there once or not at all.
    partial = asyncio.run(partial_rows(database))
    assert not any(partial.values()), partial
    state = asyncio.run(db_state(database))
    done = [s.action for s in sent]
    without = expected_state(done)
    victim = actions[victim_index]
    if command is Command.TWEET:
        acknowledged = sum(len(user.messages) for user in without.users.values())
        stored = sum(state.messages.values())
        assert acknowledged <= stored <= acknowledged + 1
        landed = stored == acknowledged + 1
        if landed:
            assert state.messages[(victim.username, victim.text)] >= 1
    else:
        acknowledged_pairs = {
            (name, other) for name, user in without.users.items() for other in user.follows
        }
        assert acknowledged_pairs <= state.follows
        extra = state.follows - acknowledged_pairs
        assert extra <= {(victim.username, victim.other)}
        landed = bool(extra)
    print(f"\n{command.value} in flight at the kill ({WRITES[command][1]}): stored={landed}")
    # latest is recorded by the action's own statement: with it, or not at all.
    assert state.latest == (victim.id if landed else actions[victim_index - 1].id)

    # Restart on the same database; the replay goes on with the next action
    # (the simulator does not resend the one that failed).
    restarted = serve(database, tmp_path, servers)

    async def rest() -> list[Sent]:
        async with new_client() as client:
            return [
                await send_action(client, restarted.api_url, action)
                for action in actions[victim_index + 1 :]
            ]

    remaining = asyncio.run(rest())
    failed = [s.outcome.describe() for s in remaining if s.outcome.kind is not OutcomeKind.OK]
    assert failed == []
    effective = actions if landed else actions[:victim_index] + actions[victim_index + 1 :]
    final = asyncio.run(read_state(restarted.api_url, usernames(actions)))
    assert differences(expected_state(effective), final) == []


# --- a slow database ----------------------------------------------------------------

POOL_SIZE = 4
# A request waits at most MINITWIT_DB_TIMEOUT for a pooled connection and at
# most as long for each statement. The requests here make at most four such
# waits before they answer: a connection for the user lookup, a connection
# for the statement on the locked table, that statement (cancelled), and a
# connection to record ``latest``. The bound does not grow with the number of
# requests: before the pool wait was bounded, this burst (10 requests per
# pooled connection) kept the last ones waiting 10 x 0.25 s. Margin: 0.5 s
# for a loaded two-core box.
SLOW_DB_GUARD = 4 * DB_TIMEOUT + 0.5
BURST = 10 * POOL_SIZE


def test_a_locked_table_gives_bounded_503s_not_a_pile_up_and_leaks_no_connection(
    cluster: OwnedCluster, database: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    server = serve(database, tmp_path, servers, MINITWIT_DB_POOL_SIZE=str(POOL_SIZE))
    api = server.api_url
    name = urlsplit(database).path.lstrip("/")

    async def scenario() -> tuple[list[tuple[int, float, str]], int, list[asyncpg.Record]]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(trust_env=False, timeout=HANG_GUARD, limits=limits) as client:
            registered = await client.post(
                f"{api}/register", json={"username": "u", "email": "u@x", "pwd": "p"}
            )
            assert registered.status_code == 204

            async def one(i: int) -> tuple[int, float, str]:
                started = time.monotonic()
                if i % 3 == 0:
                    response = await client.post(
                        f"{api}/msgs/u?latest={i}",
                        json={"content": f"m{i}"},
                        headers=SIMULATOR_AUTH,
                    )
                elif i % 3 == 1:
                    response = await client.get(f"{api}/msgs?no=5", headers=SIMULATOR_AUTH)
                else:
                    response = await client.get(f"{api}/msgs/u?latest={i}", headers=SIMULATOR_AUTH)
                return response.status_code, time.monotonic() - started, response.text

            lock = await asyncpg.connect(database)
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("LOCK TABLE message IN ACCESS EXCLUSIVE MODE")
            try:
                answers = await asyncio.gather(*(one(i) for i in range(BURST)))
                # Everything that does not need the locked table still works.
                follows = await client.get(f"{api}/fllws/u", headers=SIMULATOR_AUTH)
                assert follows.status_code == 200, follows.text
            finally:
                await transaction.rollback()
                await lock.close()

            # After the lock: twice the pool's size at once all succeed, so
            # every pooled connection came back (a leaked one would be waited
            # for until the acquire timeout, a 503).
            await asyncio.sleep(0.2)
            again = await asyncio.gather(
                *(
                    client.get(f"{api}/msgs?no=5", headers=SIMULATOR_AUTH)
                    for _ in range(2 * POOL_SIZE)
                )
            )
            ok = sum(r.status_code == 200 for r in again)
        conn = await asyncpg.connect(cluster.admin_url)
        try:
            rows = list(
                await conn.fetch(
                    "SELECT state, query FROM pg_stat_activity WHERE datname = $1", name
                )
            )
        finally:
            await conn.close()
        return answers, ok, rows

    answers, ok, connections = asyncio.run(scenario())
    slowest = max(latency for _, latency, _ in answers)
    print(
        f"\nlocked table: {len(answers)} concurrent requests on a pool of {POOL_SIZE}, "
        f"statuses {Counter(status for status, _, _ in answers)}, slowest {slowest * 1000:.0f} ms; "
        f"afterwards {len(connections)} connections: {Counter(r['state'] for r in connections)}"
    )
    for status, _, body in answers:
        assert status == 503, body
        assert is_json_outage(body), body
    assert slowest < SLOW_DB_GUARD, f"{slowest:.3f} s: requests piled up behind the pool"
    assert ok == 2 * POOL_SIZE
    assert len(connections) <= POOL_SIZE
    assert all(row["state"] == "idle" for row in connections), connections


# --- Schemathesis against the served OpenAPI document ------------------------

# Checks left out, each because it contradicts the simulator contract, not
# because the app breaks its document:
# - missing_required_header wants 401 without credentials; the contract fixes 403;
# - positive_data_acceptance wants every schema-valid body accepted; a taken
#   username is schema-valid and the contract answers it 400;
# - negative_data_rejection wants ``?no=`` (empty) refused; the app reads it as
#   the default on purpose (tests/test_api_bad_input.py).
EXCLUDED_CHECKS = "missing_required_header,positive_data_acceptance,negative_data_rejection"
EXAMPLES_PER_OPERATION = 500
MIN_CASES = 3000


def test_schemathesis_finds_no_server_error_and_no_response_breaking_the_spec(
    cluster: OwnedCluster, database: str, tmp_path: Path, servers: list[LiveServer]
) -> None:
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    server = serve(database, tmp_path, servers)
    result = subprocess.run(
        [
            str(st), "run", f"{server.api_url}/openapi.json",
            "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
            "--auth", "simulator:super_safe!",
            "--max-examples", str(EXAMPLES_PER_OPERATION),
            "--seed", "20261124",
            "--request-timeout", "10",
            "--report", "junit", "--report-dir", str(tmp_path / "schemathesis"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,  # its cache (.schemathesis/) goes there, not into the repository
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    summary = re.search(r"(\d+) generated, (.*)", output)
    print("\n" + (summary.group(0) if summary else output[-3000:]))
    assert result.returncode == 0, output[-6000:]
    assert summary is not None, output[-3000:]
    generated = int(summary.group(1))
    assert generated >= MIN_CASES, f"only {generated} cases"
    assert re.fullmatch(rf"{generated} passed(, \d+ skipped)?", summary.group(2).strip()), summary
    # Operations: every one the document lists was exercised.
    tested = re.search(r"Tested: (\d+)", output)
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert tested is not None
    assert selected is not None
    assert tested.group(1) == selected.group(1) == selected.group(2)
    assert server.process.poll() is None
