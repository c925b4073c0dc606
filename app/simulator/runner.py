"""The load generator behind ``minitwit simulate``: sequential or concurrent replay.

Both modes send the requests ``replay.build_request`` builds (the reference
simulator's, byte for byte in the body, ``Connection: close``, ``?latest=``)
through the cheap client in ``transport`` and account for them with
``replay.Outcome`` and ``replay.ReplayResult``, so their reports compare.

- **Sequential** (``workers=1``): the simulator's own behaviour. One action at
  a time in file order, each on a new connection, and after each the
  reference's tiny sleep of ``delay / 10**8`` seconds.
- **Concurrent** (``workers=N``): N requests in flight at once, over a
  dependency-aware schedule (``dependencies``): each action waits only for
  the earlier actions whose outcome it could change or depend on, so every
  action gets the answer it would get in a sequential replay while unrelated
  users' actions run side by side. Delays are not slept; ``rate`` paces the
  whole run instead.

Why a dependency graph rather than "register everyone first, then shard by
user": registering first changes what a scenario means (a tweet by a user
the file registers later is a 404 in the real run and would succeed), and a
shard per user pins a busy user's chain to one worker. The graph keeps the
file's meaning and lets any free worker take the earliest action that is
ready.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from app.simulator.replay import (
    EXPECTED,
    REFERENCE_DELAY_FACTOR,
    REFERENCE_TIMEOUT,
    SIMULATOR_CREDENTIALS,
    Credentials,
    Outcome,
    OutcomeKind,
    ReplayResult,
    SimRequest,
    build_request,
)
from app.simulator.scenario import Action, Command
from app.simulator.transport import Client, RequestTimeout, Target, TransportError

DETAIL_LIMIT = 300  # characters of an unexpected answer's body kept in its outcome


@dataclass(frozen=True)
class RunOptions:
    base_url: str
    workers: int = 1
    rate: float | None = None  # actions per second for the whole run; None: as fast as possible
    timeout: float = REFERENCE_TIMEOUT
    credentials: Credentials = SIMULATOR_CREDENTIALS
    expected: Mapping[Command, Collection[int]] = field(default_factory=lambda: EXPECTED)
    delay_factor: float = REFERENCE_DELAY_FACTOR  # sequential mode only

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("the rate must be positive")
        if self.timeout <= 0:
            raise ValueError("the timeout must be positive")


# --- the schedule ----------------------------------------------------------------------


def dependencies(actions: Sequence[Action]) -> list[list[int]]:
    """For each action (by index), the earlier actions it must wait for.

    Each action reads and writes a few keys, and waits for every earlier
    action it conflicts with (a write after a read or a write, or a read
    after a write, of the same key):

    - ``register X`` writes "X exists";
    - an action by A (tweet, follow, unfollow) reads "A exists", and for a
      follow or unfollow of B "B exists", and writes "A's own actions", so
      each user's actions keep their file order.

    So a tweet waits for its author's registration; a follow for both users'
    registrations; a registration for every earlier action that named the
    user (those got their 404 before it, as in the file); and each user's
    actions run one after another. Nothing else is ordered.
    """
    last_writer: dict[tuple[str, str], int] = {}
    readers: dict[tuple[str, str], list[int]] = {}
    result: list[list[int]] = []
    for index, action in enumerate(actions):
        if action.command is Command.REGISTER:
            reads: set[tuple[str, str]] = set()
            writes = {("exists", action.username)}
        else:
            reads = {("exists", action.username)}
            if action.other is not None:
                reads.add(("exists", action.other))
            writes = {("acts", action.username)}
        waits: set[int] = set()
        for key in reads:
            writer = last_writer.get(key)
            if writer is not None:
                waits.add(writer)
            readers.setdefault(key, []).append(index)
        for key in writes:
            writer = last_writer.get(key)
            if writer is not None:
                waits.add(writer)
            waits.update(readers.pop(key, ()))
            last_writer[key] = index
        waits.discard(index)
        result.append(sorted(waits))
    return result


class Pacer:
    """Spaces request starts ``1/rate`` seconds apart across all workers.

    When the run falls behind (the server is slower than the rate), requests
    go out as soon as a worker is free; missed slots are not made up in a burst.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot: float | None = None

    async def wait(self) -> None:
        now = time.perf_counter()
        slot = now if self.next_slot is None else max(self.next_slot, now)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


# --- one action ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """An action's request, encoded once before the run (no encoding on the clock)."""

    request: SimRequest
    payload: bytes
    expected: Collection[int]


def prepare(actions: Sequence[Action], target: Target, options: RunOptions) -> list[Prepared]:
    prepared = []
    for action in actions:
        request = build_request(action, options.credentials)
        payload = target.payload(request.method, request.path, request.headers, request.body)
        prepared.append(Prepared(request, payload, options.expected[action.command]))
    return prepared


async def send(client: Client, item: Prepared, timeout: float) -> Outcome:
    """One action; never raises for HTTP trouble (the outcome says what happened)."""
    request = item.request
    started = time.perf_counter()
    try:
        response = await client.exchange(item.payload, timeout)
    except RequestTimeout as exc:
        latency = time.perf_counter() - started
        return Outcome(
            request.action_id, request.command, OutcomeKind.TIMEOUT, latency, None, str(exc)
        )
    except TransportError as exc:
        latency = time.perf_counter() - started
        kind = OutcomeKind.CONNECTION_ERROR
        return Outcome(request.action_id, request.command, kind, latency, None, str(exc))
    latency = time.perf_counter() - started
    if response.status in item.expected:
        return Outcome(request.action_id, request.command, OutcomeKind.OK, latency, response.status)
    detail = response.body.decode("utf-8", "replace")[:DETAIL_LIMIT]
    kind = OutcomeKind.UNEXPECTED_STATUS
    return Outcome(request.action_id, request.command, kind, latency, response.status, detail)


# --- the two modes ---------------------------------------------------------------------------


async def run(
    actions: Sequence[Action],
    options: RunOptions,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> ReplayResult:
    """Replay ``actions`` against ``options.base_url``; sequential when ``workers == 1``.

    Never stops early: a failed action is recorded and the run goes on, as the
    simulator does. ``on_outcome`` sees each outcome as it happens.
    """
    target = Target.parse(options.base_url)
    prepared = prepare(actions, target, options)
    client = Client(target)
    if options.workers == 1:
        return await _sequential(actions, prepared, client, options, on_outcome)
    return await _concurrent(actions, prepared, client, options, on_outcome)


async def _sequential(
    actions: Sequence[Action],
    prepared: Sequence[Prepared],
    client: Client,
    options: RunOptions,
    on_outcome: Callable[[Outcome], None] | None,
) -> ReplayResult:
    result = ReplayResult()
    pacer = Pacer(options.rate) if options.rate else None
    result.start()
    for action, item in zip(actions, prepared, strict=True):
        if pacer is not None:
            await pacer.wait()
        outcome = await send(client, item, options.timeout)
        result.record(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        if action.delay and options.delay_factor > 0:
            await asyncio.sleep(action.delay * options.delay_factor)
    result.finish()
    return result


async def _concurrent(
    actions: Sequence[Action],
    prepared: Sequence[Prepared],
    client: Client,
    options: RunOptions,
    on_outcome: Callable[[Outcome], None] | None,
) -> ReplayResult:
    """``options.workers`` tasks take the earliest ready action until none is left."""
    total = len(actions)
    waits = dependencies(actions)
    pending = [len(w) for w in waits]
    dependents: list[list[int]] = [[] for _ in range(total)]
    for index, earlier in enumerate(waits):
        for before in earlier:
            dependents[before].append(index)
    ready = [index for index in range(total) if pending[index] == 0]
    heapq.heapify(ready)
    finished = 0
    wake = asyncio.Condition()
    pacer = Pacer(options.rate) if options.rate else None
    result = ReplayResult()

    def work_or_end() -> bool:
        return bool(ready) or finished == total

    async def worker() -> None:
        nonlocal finished
        while True:
            async with wake:
                await wake.wait_for(work_or_end)
                if not ready:
                    return
                index = heapq.heappop(ready)
            if pacer is not None:
                await pacer.wait()
            outcome = await send(client, prepared[index], options.timeout)
            result.record(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            async with wake:
                finished += 1
                unblocked = 0
                for after in dependents[index]:
                    pending[after] -= 1
                    if pending[after] == 0:
                        heapq.heappush(ready, after)
                        unblocked += 1
                if finished == total:
                    wake.notify_all()  # the end: every idle worker returns
                elif unblocked:
                    wake.notify(unblocked)  # wake no more workers than there is work for

    result.start()
    await asyncio.gather(*(worker() for _ in range(min(options.workers, max(total, 1)))))
    result.finish()
    return result
