"""The state a scenario implies, and the differences between two states.

A replay is only half a test: the statuses can all be 204 while a message was
stored under the wrong user, a follow went missing or ``latest`` stuck. So
the scenario is also played here, in memory, by the contract's rules, and
the resulting ``State`` is compared with the one read back through the API
(``replay.read_state``).

The rules modelled are the contract's, not the generator's assumptions, so a
real scenario with odd actions still gets the right expectation:

- a registration of a taken username changes nothing (the API answers 400);
- a tweet, follow or unfollow naming a user who is not registered (either
  side) changes nothing (404);
- following twice leaves one relation; unfollowing someone not followed is a
  no-op;
- ``latest`` is the id of the last action, whatever its outcome (every
  action passes authorization, and the API records it even on 400/404).

Input limits (message length, ...) are not modelled: a scenario that breaks
them is one whose replay reports unexpected statuses anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from app.simulator.scenario import Action, Command


@dataclass(frozen=True)
class UserState:
    """What the API shows about one user.

    ``follows`` is in the order the relations were made (the order the app
    happens to list them in; compared as a multiset, since the contract
    fixes no order), ``messages`` oldest first.
    """

    follows: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    """Registered users, each one's follows and messages; ``latest``; the public timeline.

    ``public`` is every message as ``(username, text)``, oldest first, which is
    the reverse of ``GET /msgs`` when actions ran one at a time.
    ``read_limit`` is set on a state read through the API: each list holds at
    most that many of the newest items (the ``no`` it was read with), and
    ``differences`` compares only as much of the expected lists.
    """

    users: Mapping[str, UserState] = field(default_factory=dict)
    latest: int = -1
    public: tuple[tuple[str, str], ...] = ()
    read_limit: int | None = None


def usernames(actions: Iterable[Action]) -> list[str]:
    """Every name a scenario mentions (actors and targets), first mention first.

    This is what to read back: names that were never registered must come
    back as unknown (404), not as empty users.
    """
    seen: dict[str, None] = {}
    for action in actions:
        seen.setdefault(action.username)
        if action.other is not None:
            seen.setdefault(action.other)
    return list(seen)


def expected_state(actions: Iterable[Action]) -> State:
    """Play ``actions`` in order by the contract's rules; see the module docstring."""
    follows: dict[str, dict[str, None]] = {}  # ordered sets: insertion order is follow order
    messages: dict[str, list[str]] = {}
    public: list[tuple[str, str]] = []
    latest = -1
    for action in actions:
        latest = action.id
        name = action.username
        if action.command is Command.REGISTER:
            if name not in follows:
                follows[name] = {}
                messages[name] = []
        elif name not in follows:
            continue  # 404: nothing changes
        elif action.command is Command.TWEET:
            assert action.text is not None
            messages[name].append(action.text)
            public.append((name, action.text))
        else:
            other = action.other
            assert other is not None
            if other not in follows:
                continue
            if action.command is Command.FOLLOW:
                follows[name].setdefault(other)
            else:
                follows[name].pop(other, None)
    return State(
        users={name: UserState(tuple(follows[name]), tuple(messages[name])) for name in follows},
        latest=latest,
        public=tuple(public),
    )


T = TypeVar("T")


def _newest(items: tuple[T, ...], limit: int | None) -> tuple[T, ...]:
    """The last ``limit`` items: what a read with ``?no=limit`` returns of a longer list."""
    return items if limit is None else items[len(items) - min(limit, len(items)) :]


def _show(items: Iterable[object], limit: int = 5) -> str:
    shown = [repr(item) for item in items]
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def _sequence_difference(
    what: str, expected: tuple[object, ...], actual: tuple[object, ...]
) -> str:
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return f"{what}: item {index} (oldest first) is {got!r}, expected {want!r}"
    return f"{what}: {len(actual)} items, expected {len(expected)}"


def differences(
    expected: State, actual: State, *, ordered: bool = True, limit: int | None = None
) -> list[str]:
    """Human-readable differences between two states; empty when they agree.

    ``ordered=False`` compares messages as multisets and skips the public
    timeline's order: with concurrent clients the order of two actions in
    flight at once is not defined. ``limit`` is how many items a read could
    return per list (the API's ``no``; by default ``actual.read_limit``): only
    the newest ``limit`` expected messages are compared.
    """
    limit = actual.read_limit if limit is None else limit
    found: list[str] = []
    if expected.latest != actual.latest:
        found.append(f"latest is {actual.latest}, expected {expected.latest}")
    missing = [name for name in expected.users if name not in actual.users]
    extra = [name for name in actual.users if name not in expected.users]
    if missing:
        found.append(f"users missing: {_show(missing)}")
    if extra:
        found.append(f"users that should not exist: {_show(extra)}")

    for name, want in expected.users.items():
        got = actual.users.get(name)
        if got is None:
            continue
        want_follows, got_follows = Counter(want.follows), Counter(got.follows)
        if want_follows != got_follows:
            lacking = sorted((want_follows - got_follows).elements())
            surplus = sorted((got_follows - want_follows).elements())
            parts = []
            if lacking:
                parts.append(f"missing {_show(lacking)}")
            if surplus:
                parts.append(f"unexpected {_show(surplus)}")
            found.append(f"{name!r} follows: " + "; ".join(parts))
        want_messages = _newest(want.messages, limit)
        if ordered and want_messages != got.messages:
            found.append(_sequence_difference(f"{name!r} messages", want_messages, got.messages))
        elif not ordered and Counter(want_messages) != Counter(got.messages):
            lacking = list((Counter(want_messages) - Counter(got.messages)).elements())
            surplus = list((Counter(got.messages) - Counter(want_messages)).elements())
            found.append(
                f"{name!r} messages: missing {_show(lacking)}; unexpected {_show(surplus)}"
            )
    if ordered and _newest(expected.public, limit) != actual.public:
        found.append(
            _sequence_difference("public timeline", _newest(expected.public, limit), actual.public)
        )
    return found
