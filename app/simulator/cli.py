"""``minitwit simulate``: the load generator, wired into ``app.cli``.

A client only: it reads no app settings and opens no database, so it runs
from any machine against any MiniTwit (``needs_settings=False``). Only
argparse is imported at module level: ``minitwit serve`` builds the same
parser and must not pay for the rest.

Exit status: 0 when every action got the expected answer (and the state
verified, with ``--verify``); 1 when any action did not, or the state
differs; 2 for a usage error or a malformed scenario file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from app.simulator.report import Verification
    from app.simulator.scenario import Action

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:5001"
DESCRIPTION = """\
Replay a simulator scenario against a MiniTwit API, or generate a synthetic one
(--generate), and report throughput, latency percentiles (overall and per
command) and every unexpected answer by kind.

--workers 1 (the default) replays like the course's simulator: one request at
a time, each on a new connection (Connection: close), a 0.3 s timeout,
?latest=<action id>. --workers N keeps N requests in flight: each user's
actions still run in file order, and an action that names a user waits for
that user's registration, so every action gets the answer a sequential replay
would give it. --rate paces the run.

Exit status: 0 if every action got its expected status (and --verify found
the scenario's state); 1 otherwise; 2 for bad usage or a malformed scenario."""
EXAMPLES = """\
examples:
  minitwit simulate --generate --users 200 --actions 26000      # like the real scenario
  minitwit simulate scenario.csv --base-url http://host:5001 --verify
  minitwit simulate --generate --workers 16 --rate 500 --json > report.json

environment variables:
  SIMULATOR_USERNAME / SIMULATOR_PASSWORD (default: simulator / super_safe!)
      the API's Basic credentials (--username / --password override them)"""


def add_simulate_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter: type[argparse.HelpFormatter],
) -> None:
    parser = commands.add_parser(
        "simulate",
        help="replay or generate simulator traffic against an API and report on it",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="a scenario file in the simulator's tab-separated format",
    )
    generated = parser.add_argument_group("a generated scenario (instead of SCENARIO)")
    generated.add_argument(
        "--generate", action="store_true", help="generate a synthetic scenario (the real mix)"
    )
    generated.add_argument("--users", type=int, default=200, help="users (default 200)")
    generated.add_argument("--actions", type=int, default=26_000, help="actions (default 26000)")
    generated.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help=f"the API's base URL (default {DEFAULT_BASE_URL}; /api on the web port works too)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="requests in flight at once (default 1: sequential, exactly like the simulator)",
    )
    parser.add_argument(
        "--rate", type=float, help="at most this many actions per second (default: no limit)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=0.3,
        help="seconds to connect, then to get the answer (default 0.3, the simulator's)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="afterwards, read every user's follows and messages and latest back through the "
        "API and compare them with what the scenario implies",
    )
    parser.add_argument(
        "--allow-taken-usernames",
        action="store_true",
        help="accept a 400 on register, as the reference simulator does (a scenario that "
        "registers a name twice)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--username",
        default=os.environ.get("SIMULATOR_USERNAME") or "simulator",
        help="the simulator's Basic user (default $SIMULATOR_USERNAME or simulator)",
    )
    parser.add_argument(
        "--password",
        default=None,
        help="its password (default $SIMULATOR_PASSWORD or super_safe!)",
    )
    parser.set_defaults(handler=simulate, needs_settings=False)


def _fail(message: str, code: int) -> int:
    print(f"minitwit simulate: {message}", file=sys.stderr)
    return code


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is there (it is, with uvicorn[standard]): a cheaper client."""
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] installs it; a bare install may not
        return asyncio.run(coroutine)
    result: T = uvloop.run(coroutine)
    return result


def _load(args: argparse.Namespace) -> tuple[list[Action], str]:
    from app.simulator.generate import generate
    from app.simulator.scenario import read_scenario

    if args.generate:
        actions = generate(args.users, args.actions, args.seed)
        return actions, (
            f"generated: {args.users:,} users, {args.actions:,} actions, seed {args.seed}"
        )
    return read_scenario(args.scenario), args.scenario


async def _verify(
    actions: Sequence[Action], base_url: str, credentials: Any, sequential: bool
) -> Verification:
    import dataclasses

    import httpx

    from app.simulator.expected import differences, expected_state, usernames
    from app.simulator.replay import StateReadError, read_state
    from app.simulator.report import Verification

    expected = expected_state(actions)
    try:
        actual = await read_state(base_url, usernames(actions), credentials=credentials)
    except (StateReadError, httpx.HTTPError) as exc:
        return Verification(len(expected.users), error=str(exc) or type(exc).__name__)
    if not sequential:
        # Actions in flight together finish in any order: the last ``latest``
        # recorded may be any id sent, and the public timeline interleaves users
        # in completion order. Each user's own messages are still compared in
        # order (a user's actions run in file order).
        ids = {action.id for action in actions}
        latest = actual.latest if actual.latest in ids else expected.latest
        expected = dataclasses.replace(expected, latest=latest, public=actual.public)
    return Verification(len(expected.users), differences(expected, actual))


def simulate(args: argparse.Namespace) -> int:
    from app.simulator.replay import EXPECTED, REFERENCE_EXPECTED, Credentials
    from app.simulator.report import ProgressLine, Report, RunInfo
    from app.simulator.runner import RunOptions, run
    from app.simulator.scenario import ScenarioError
    from app.simulator.transport import Target

    if args.generate == (args.scenario is not None):
        return _fail("give either a SCENARIO file or --generate (see --help)", 2)
    password = args.password
    if password is None:
        password = os.environ.get("SIMULATOR_PASSWORD") or "super_safe!"
    credentials = Credentials(args.username, password)
    try:
        Target.parse(args.base_url)
        options = RunOptions(
            base_url=args.base_url,
            workers=args.workers,
            rate=args.rate,
            timeout=args.timeout,
            credentials=credentials,
            expected=REFERENCE_EXPECTED if args.allow_taken_usernames else EXPECTED,
        )
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        actions, source = _load(args)
    except ScenarioError as exc:
        return _fail(f"{args.scenario}: {exc}", 2)
    except OSError as exc:
        return _fail(f"cannot read {args.scenario}: {exc.strerror or exc}", 2)
    except ValueError as exc:  # a shape the generator cannot make
        return _fail(str(exc), 2)
    if not actions:
        return _fail(f"{source}: the scenario has no actions", 2)

    info = RunInfo(args.base_url, source, args.workers, args.timeout, args.rate)
    progress = ProgressLine(len(actions), enabled=not args.no_progress)

    async def main() -> Report:
        try:
            result = await run(actions, options, progress)
        finally:
            progress.close()
        verification = None
        if args.verify:
            verification = await _verify(
                actions, args.base_url, credentials, sequential=args.workers == 1
            )
        return Report(info, result, verification)

    report = _run(main())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text())
    return 0 if report.ok else 1
