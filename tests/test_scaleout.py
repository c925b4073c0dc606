"""Three replicas behind the repository's HAProxy, one PostgreSQL, a replica killed.

Real parts only: three ``minitwit serve`` processes on one PostgreSQL
database, and ``haproxy`` running ``compose/haproxy/haproxy.cfg`` (the file
the production Compose variant mounts) with its loopback environment and a
self-signed certificate (tests/haproxy.py). Requests go through HAProxy's TLS
API frontend, built and classified by ``app.simulator.replay`` exactly as the
simulator sends them (one at a time, ``Connection: close``, 0.3 s timeout).

What the configuration promises and these tests hold it to:

- a replica SIGKILLed between two requests costs the simulator nothing: the
  connections HAProxy then tries to it are refused, so those requests never
  reached it and are retried on another replica (``conn-failure`` with
  ``redispatch``), and the replica is taken out of rotation. Failed requests:
  0, and the final state is exactly the scenario's;
- a replica SIGKILLed while a request is in it: a GET is retried elsewhere
  (reading twice is harmless), a POST is not (the replica may have written
  it), so the client gets exactly one failure, a JSON 502, and the action is
  stored at most once;
- in the plain-HTTP mode the Swarm stack on the droplets runs, the same file
  serves the web UI and the API under ``/api`` on one port, the API through
  the same backend (its JSON errors), and no public ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.db import migrate
from app.simulator.expected import differences, expected_state, usernames
from app.simulator.generate import generate
from app.simulator.replay import (
    EXPECTED,
    REFERENCE_TIMEOUT,
    SIMULATOR_CREDENTIALS,
    Outcome,
    ReplayResult,
    build_request,
    read_state,
    send,
)
from app.simulator.scenario import Action
from tests import postgres
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings, start_server
from tests.haproxy import LoadBalancer, haproxy_binary, start_haproxy
from tests.processes import HANG_GUARD

pytestmark = pytest.mark.slow

REPLICAS = 3
# The app's production settings, not the test default (2 s): this is the
# configuration the simulator meets.
REPLICA_ENV = {"MINITWIT_DB_TIMEOUT": "0.25", "MINITWIT_LOG_LEVEL": "WARNING"}


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[str]:
    url = asyncio.run(postgres.create_database(pg_admin_url))
    try:
        asyncio.run(migrate(make_settings(url), progress=lambda _: None))
        yield url
    finally:
        asyncio.run(postgres.drop_database(pg_admin_url, url))


@pytest.fixture
def cluster(pg_database: str, tmp_path: Path) -> Iterator[tuple[list[LiveServer], LoadBalancer]]:
    """Three replicas on one database, and HAProxy in front of them."""
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (scripts/install-system-deps installs it)")
    replicas: list[LiveServer] = []
    balancer: LoadBalancer | None = None
    try:
        for _ in range(REPLICAS):
            replicas.append(start_server(pg_database, tmp_path, env=REPLICA_ENV))
        balancer = start_haproxy(replicas, tmp_path)
        yield replicas, balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for replica in replicas:
            replica.stop()


def sigkill(replica: LiveServer) -> None:
    """SIGKILL, and wait until the process is gone (its sockets closed by the kernel)."""
    replica.process.send_signal(signal.SIGKILL)
    replica.process.wait(HANG_GUARD)


async def replay_through(
    balancer: LoadBalancer,
    actions: list[Action],
    after: dict[int, object] | None = None,
) -> ReplayResult:
    """``app.simulator.replay.replay``'s loop, on a client that trusts the test certificate.

    Same requests (``build_request``), same client settings as ``new_client``
    (no keep-alive, no proxies, one connection), same 0.3 s timeout and
    classification (``send``). ``after`` maps an action id to a callable run
    right after that action's answer arrived, before the next is sent.
    """
    result = ReplayResult()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=0)
    async with balancer.client(follow_redirects=False, limits=limits) as client:
        result.start()
        for action in actions:
            request = build_request(action, SIMULATOR_CREDENTIALS)
            outcome: Outcome = await send(
                client,
                balancer.api_url,
                request,
                timeout=REFERENCE_TIMEOUT,
                expected=EXPECTED[action.command],
            )
            result.record(outcome)
            hook = (after or {}).get(action.id)
            if callable(hook):
                hook()
        result.finish()
    return result


def test_a_replica_killed_mid_replay_costs_the_simulator_nothing(
    cluster: tuple[list[LiveServer], LoadBalancer],
) -> None:
    replicas, balancer = cluster
    victim = replicas[1]
    actions = generate(users=40, actions=900, seed=31)
    kill_after = 300

    result = asyncio.run(replay_through(balancer, actions, {kill_after: lambda: sigkill(victim)}))
    print(result.summary())

    # Every action was answered as the simulator expects: zero failed requests.
    assert result.failures == [], "\n".join(o.describe() for o in result.failures[:20])

    servers = balancer.servers("api")
    redispatched = int(balancer.backend("api")["wredis"])
    print(
        {
            name: (row["status"], row["stot"], row["wretr"], row["wredis"])
            for name, row in servers.items()
        },
        f"redispatches: {redispatched}",
    )
    # The victim served its share before the kill and is out of rotation now.
    assert int(servers["app2"]["stot"]) >= kill_after // REPLICAS - 10
    assert servers["app2"]["status"].startswith("DOWN"), servers["app2"]["status"]
    assert all(servers[name]["status"] == "UP" for name in ("app1", "app3"))
    # The zero above is the retries' doing: requests were sent to the dead
    # replica (refused) and went to another one. Without retry-on conn-failure
    # and redispatch, each of these would have been a 503 for the simulator.
    assert redispatched >= 1, "no request was redispatched: the kill was not exercised"

    # Nothing lost, nothing doubled: the state read back (from a survivor)
    # is exactly the one the scenario implies.
    state = asyncio.run(read_state(replicas[0].api_url, usernames(actions)))
    assert differences(expected_state(actions), state) == []


async def _stuck_request(
    balancer: LoadBalancer,
    victim: LiveServer,
    method: str,
    path: Callable[[int], str],
    body: Callable[[int], bytes | None],
) -> tuple[list[httpx.Response], httpx.Response]:
    """Send ``REPLICAS`` requests at once with the victim frozen; kill it under the one it got.

    Round robin gives each replica one of them. The victim is SIGSTOPped
    first, so its request is accepted by the kernel and sent by HAProxy, but
    never read: it is provably in the victim when the victim is SIGKILLed.
    Returns the answers of the others, then the one the victim had.
    """
    headers = {**SIMULATOR_AUTH, "Connection": "close", "Content-Type": "application/json"}
    os.kill(victim.process.pid, signal.SIGSTOP)
    try:
        async with balancer.client(timeout=HANG_GUARD) as client:
            tasks = [
                asyncio.ensure_future(
                    client.request(
                        method, f"{balancer.api_url}{path(i)}", content=body(i), headers=headers
                    )
                )
                for i in range(REPLICAS)
            ]
            deadline = time.monotonic() + HANG_GUARD
            while sum(task.done() for task in tasks) < REPLICAS - 1:
                assert time.monotonic() < deadline, "the requests to the live replicas hung"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # the victim's request is in its socket by now
            assert sum(task.done() for task in tasks) == REPLICAS - 1
            stuck = next(task for task in tasks if not task.done())
            sigkill(victim)
            answered = [task.result() for task in tasks if task is not stuck]
            return answered, await stuck
    finally:
        if victim.process.poll() is None:
            os.kill(victim.process.pid, signal.SIGCONT)


async def _messages(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return [row["text"] for row in await conn.fetch("SELECT text FROM message ORDER BY id")]
    finally:
        await conn.close()


def _retries(balancer: LoadBalancer) -> int:
    row = balancer.backend("api")
    return int(row["wretr"]) + int(row["wredis"])


def _register(replica: LiveServer, name: str) -> None:
    response = httpx.post(
        f"{replica.api_url}/register",
        json={"username": name, "email": f"{name}@example.com", "pwd": "pw"},
        timeout=HANG_GUARD,
    )
    assert response.status_code == 204, response.text


def test_a_post_in_flight_on_a_killed_replica_fails_once_and_is_not_retried(
    cluster: tuple[list[LiveServer], LoadBalancer], pg_database: str
) -> None:
    replicas, balancer = cluster
    _register(replicas[0], "writer")
    before = _retries(balancer)

    answered, stuck = asyncio.run(
        _stuck_request(
            balancer,
            replicas[1],
            "POST",
            lambda i: f"/msgs/writer?latest={i}",
            lambda i: f'{{"content": "in flight {i}"}}'.encode(),
        )
    )
    assert [r.status_code for r in answered] == [204, 204], [r.text for r in answered]
    # Exactly one failure, and the right one: the POST reached a replica that
    # died before answering, so HAProxy cannot know whether it was done and
    # must not send it again. The client is told so, in the API's error shape.
    assert stuck.status_code == 502, stuck.text
    assert stuck.json()["status"] == 502
    assert "may or may not have been done" in stuck.json()["error_msg"]
    assert _retries(balancer) == before, "a POST that had reached a replica was sent again"
    # The frozen replica never read it, so it is not stored; the other two
    # are, once each.
    acknowledged = [json.loads(r.request.content)["content"] for r in answered]
    assert sorted(asyncio.run(_messages(pg_database))) == sorted(acknowledged)


def test_a_get_in_flight_on_a_killed_replica_is_retried_on_another(
    cluster: tuple[list[LiveServer], LoadBalancer],
) -> None:
    replicas, balancer = cluster
    _register(replicas[0], "reader")
    before = _retries(balancer)

    answered, stuck = asyncio.run(
        _stuck_request(balancer, replicas[1], "GET", lambda i: "/msgs/reader?no=5", lambda i: None)
    )
    assert [r.status_code for r in answered] == [200, 200]
    # A read is safe to repeat: HAProxy sent it again, to a live replica.
    assert stuck.status_code == 200, stuck.text
    assert stuck.json() == []
    assert _retries(balancer) > before


def test_the_droplets_plain_http_mode_serves_the_ui_and_the_api_under_api(
    pg_database: str, tmp_path: Path
) -> None:
    """The same configuration as the Swarm stack on the droplets runs it
    (``MINITWIT_LB_PLAIN_HTTP``: one plain port, TLS ending in front): the web UI
    from the replicas' web port, ``/api/...`` from their API port through the api
    backend, with its JSON errors, and no public ``/metrics``."""
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (scripts/install-system-deps installs it)")
    replica = start_server(pg_database, tmp_path, env=REPLICA_ENV)
    balancer: LoadBalancer | None = None
    try:
        balancer = start_haproxy([replica], tmp_path, plain=True)
        assert balancer.web_url.startswith("http://")
        with httpx.Client(trust_env=False, timeout=HANG_GUARD, headers=SIMULATOR_AUTH) as client:
            public = client.get(f"{balancer.web_url}/public")
            assert public.status_code == 200
            assert public.headers["content-type"].startswith("text/html")
            api_sessions = int(balancer.backend("api")["stot"])
            registered = client.post(
                f"{balancer.api_url}/register?latest=7",
                json={"username": "plain", "email": "plain@example.com", "pwd": "pw"},
            )
            assert registered.status_code == 204, registered.text
            assert client.get(f"{balancer.api_url}/latest").json() == {"latest": 7}
            assert int(balancer.backend("api")["stot"]) == api_sessions + 2
            for path in ("/metrics", "/api/metrics"):
                assert client.get(f"{balancer.web_url}{path}").status_code == 404, path
            replica.stop()
            gone = client.get(f"{balancer.api_url}/latest")
            assert gone.status_code == 503, gone.text
            assert gone.json()["status"] == 503
            assert "No MiniTwit replica is available" in gone.json()["error_msg"]
    finally:
        if balancer is not None:
            balancer.stop()
        replica.stop()
