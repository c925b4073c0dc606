"""The app's ECS formatter writes exactly what ecs-logging's own formatter writes.

``app.observability.logs`` builds the common event (no exception, flat
extras) itself, because the library's generic path cost a fifth of a
simulator action's CPU. These tests hold it to the library, line for line,
for the events the app writes and for the unusual ones it hands back.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import ecs_logging
import pytest

from app.observability import logs
from app.observability.logs import ecs_formatter

ACCESS_EXTRA = {
    "event.dataset": "minitwit.access",
    "event.action": "http-request",
    "event.category": "web",
    "event.outcome": "success",
    "event.duration": 1_234_567,
    "http.request.method": "POST",
    "http.response.status_code": 204,
    "http.route": "/msgs/<path:username>",
    "url.path": "/api/msgs/Ana%20Silva",
    "client.ip": "127.0.0.1",
    "user.name": "Ana Silva",
    "user_agent.original": None,
    "labels.app": "api",
    "http.request.id": "c903bdbefdf74fe484a65f7bb4efb27b",
}


def _raised() -> Any:
    try:
        raise ValueError("boom \u00e6")
    except ValueError:
        return sys.exc_info()


def spec(
    logger: str,
    level: int,
    message: str,
    args: tuple[Any, ...] = (),
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
    stack_info: str | None = None,
) -> tuple[Any, ...]:
    return (logger, level, message, args, extra or {}, exc_info, stack_info)


INFO, WARNING, ERROR = logging.INFO, logging.WARNING, logging.ERROR
SNOWMAN = "J\u00f8rgen \u2603"
RECORDS: dict[str, tuple[Any, ...]] = {
    "access event": spec("minitwit.access", INFO, "%s %s -> %d", ("POST", "/x", 204), ACCESS_EXTRA),
    "slow request": spec(
        "minitwit.access", WARNING, "slow", extra={**ACCESS_EXTRA, "event.action": "slow-request"}
    ),
    "domain event": spec(
        "minitwit.events",
        INFO,
        "%s followed %s",
        ("Ana", "Bo"),
        {"event.action": "user-followed", "user.name": "Ana", "user.target.name": "Bo"},
    ),
    "no extras": spec("uvicorn.error", INFO, "Started server process [%d]", (42,)),
    "non-ASCII": spec("minitwit.events", INFO, "by %s", (SNOWMAN,), {"user.name": SNOWMAN}),
    "lone surrogate": spec("minitwit.events", INFO, "%s", ("\ud800",), {"user.name": "\ud800"}),
    "error with exc_info": spec(
        "minitwit.events", ERROR, "unhandled", extra={"event.action": "x"}, exc_info=_raised()
    ),
    "stack_info": spec("minitwit", WARNING, "look", stack_info="Stack (most recent call last):"),
    "nested extra": spec("minitwit", INFO, "nested", extra={"labels": {"app": "web"}}),
    "colliding extras": spec("minitwit", INFO, "clash", extra={"labels": "x", "labels.app": "w"}),
    "excluded field": spec(
        "minitwit", INFO, "excluded", extra={"log.origin.function": "f", "process.name": "p"}
    ),
    "not JSON-able value": spec("minitwit", INFO, "repr", extra={"labels.x": ValueError("e")}),
    "service override": spec("minitwit", INFO, "svc", extra={"service.name": "other"}),
    "plain value types": spec(
        "minitwit",
        INFO,
        "types",
        extra={"labels.r": 0.25, "labels.t": True, "labels.n": 3, "labels.nan": float("nan")},
    ),
    "an int subclass": spec("minitwit", INFO, "status", extra={"labels.s": HTTPStatus.OK}),
    "a quote, a newline and a NUL": spec(
        "minitwit", INFO, 'a "b"\n\x00', extra={"user.name": "\x00"}
    ),
}


def _record(spec: tuple[Any, ...]) -> logging.LogRecord:
    name, level, message, args, extra, exc_info, stack_info = spec
    record = logging.LogRecord(name, level, __file__, 10, message, args, exc_info, "f", stack_info)
    record.created, record.msecs = 1_700_000_000.25, 250.0  # both formatters see the same instant
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _library_formatter() -> ecs_logging.StdlibFormatter:
    app_formatter = ecs_formatter("9.9.9", "test")
    return ecs_logging.StdlibFormatter(
        extra=app_formatter._extra,
        exclude_fields=sorted(app_formatter._exclude_fields),
        ensure_ascii=False,
    )


def _outcome(format_: Callable[[logging.LogRecord], str], spec: tuple[Any, ...]) -> str:
    try:
        return format_(_record(spec))
    except Exception as exc:  # the library refuses some records: so must we
        return f"raised {type(exc).__name__}"


@pytest.mark.parametrize("spec", RECORDS.values(), ids=RECORDS.keys())
def test_same_json_as_ecs_logging(spec: tuple[Any, ...]) -> None:
    ours = _outcome(ecs_formatter("9.9.9", "test").format, spec)
    library = _outcome(_library_formatter().format, spec)
    if "\ud800" in library:  # the one deliberate difference: always encodable
        library = library.encode("utf-8", "backslashreplace").decode("utf-8")
    assert ours == library


def test_one_shape_with_other_values_is_still_the_library_line() -> None:
    """The line's layout is compiled once per set of field names, then reused."""
    ours, library = ecs_formatter("9.9.9", "test"), _library_formatter()
    for name, method in (("Ana", "GET"), ("Bo \u2603", "POST"), ('"x"', "DELETE")):
        extra = {**ACCESS_EXTRA, "user.name": name, "http.request.method": method}
        record = spec("minitwit.access", INFO, "%s", (name,), extra)
        assert ours.format(_record(record)) == library.format(_record(record))


def test_the_access_event_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the point of the override: the common event never reaches the library's path."""
    formatter = ecs_formatter("9.9.9", "test")

    def refuse(self: Any, record: logging.LogRecord) -> dict[str, Any]:
        raise AssertionError("the library's generic path was used")

    monkeypatch.setattr(ecs_logging.StdlibFormatter, "format_to_ecs", refuse)
    line = formatter.format(_record(RECORDS["access event"]))
    assert '"http":{"request":{"id":"c903bdbefdf74fe484a65f7bb4efb27b","method":"POST"}' in line


# --- The direct writer (``logs.write_event``): the access event without a LogRecord ---

DIRECT_EVENTS: dict[str, tuple[int, str, dict[str, Any]]] = {
    "access event": (INFO, "POST /x -> 204 in 1.2 ms", ACCESS_EXTRA),
    "slow request": (WARNING, "slow", {**ACCESS_EXTRA, "event.action": "slow-request"}),
    "no request id, no client": (
        INFO,
        "GET / -> 200",
        {key: value for key, value in ACCESS_EXTRA.items() if key != "http.request.id"}
        | {"client.ip": None, "user.name": None},
    ),
    "non-ASCII and a lone surrogate": (
        INFO,
        f"GET /{SNOWMAN}\ud800",
        {**ACCESS_EXTRA, "user.name": SNOWMAN, "url.path": "/\ud800"},
    ),
    "a secret-looking field is dropped": (INFO, "x", {"labels.app": "api", "password": "hunter2"}),
}


@pytest.fixture
def configured_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """``logs.configure`` writing to a string, at a fixed instant; the old setup restored.

    pytest adds its own capturing handler to the root logger when the test body
    starts (after this fixture): it is taken off for the duration, or the direct
    writer would rightly step aside for it."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure(level="INFO", version="9.9.9", environment="test", stream=stream)
    ours = list(root.handlers)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
    monkeypatch.setattr(root, "addHandler", lambda handler: None)  # pytest's, at call time
    token = logs.request_id.set("c0ffee")
    yield stream
    logs.request_id.reset(token)
    assert root.handlers == ours
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    monkeypatch.setattr(logs, "_event_writer", None)


def _written(stream: io.StringIO, write: Callable[[], object]) -> str:
    start = stream.tell()
    write()
    return stream.getvalue()[start:]


ACCESS_LOGGER = logging.getLogger("minitwit.access")


def _as_logged(
    stream: io.StringIO, write: Callable[[], object], event: tuple[int, str, dict[str, Any]]
) -> str:
    """What ``write`` wrote, once it is known to be the one line ``logging`` writes
    for ``event`` on the access logger."""
    level, message, fields = event
    direct = _written(stream, write)
    logged = _written(stream, lambda: ACCESS_LOGGER.log(level, message, extra=fields))
    assert direct.count("\n") == 1
    assert direct.endswith("\n")
    assert direct == logged
    return direct


@pytest.mark.parametrize("event", DIRECT_EVENTS.values(), ids=DIRECT_EVENTS.keys())
def test_the_direct_writer_writes_what_logging_writes(
    configured_stream: io.StringIO, event: tuple[int, str, dict[str, Any]]
) -> None:
    level, message, fields = event
    writer = logs._event_writer
    assert writer is not None
    direct = _as_logged(
        configured_stream, lambda: writer.write(ACCESS_LOGGER, level, message, fields), event
    )
    assert "hunter2" not in direct


# --- Event kinds (``logs.EventKind``): the access event's fixed fields written in once ---

ACCESS_FIXED = {"event.dataset": "minitwit.access", "event.category": "web", "labels.app": "api"}
ACCESS_VARYING = tuple(name for name in ACCESS_EXTRA if name not in ACCESS_FIXED)
KIND_EVENTS: dict[str, tuple[int, str, dict[str, Any]]] = {
    "access event": (INFO, "POST /x -> 204 in 1.2 ms", ACCESS_EXTRA),
    "slow, a % in the path": (
        WARNING,
        "GET /100% -> 200 (slow)",
        {**ACCESS_EXTRA, "event.action": "slow-request", "url.path": "/100%25%s"},
    ),
    "no user, no client, no request id": (
        INFO,
        "GET / -> 200",
        {**ACCESS_EXTRA, "user.name": None, "client.ip": None, "http.request.id": None},
    ),
    "non-ASCII, a lone surrogate, quotes and NULs": (
        INFO,
        f"GET /{SNOWMAN}\ud800",
        {**ACCESS_EXTRA, "user.name": SNOWMAN, "url.path": '/\ud800"\x00'},
    ),
    "a value of a type only the library writes": (
        INFO,
        "x",
        {**ACCESS_EXTRA, "event.duration": 1.5e300 * 1e10, "user.name": ["a", "b"]},
    ),
}


@pytest.mark.parametrize("event", KIND_EVENTS.values(), ids=KIND_EVENTS.keys())
def test_an_event_kind_writes_what_logging_writes(
    configured_stream: io.StringIO, event: tuple[int, str, dict[str, Any]]
) -> None:
    """Every mix of absent values (each its own layout), each value type, escaping."""
    level, message, fields = event
    kind = logs.EventKind(ACCESS_LOGGER, ACCESS_FIXED, ACCESS_VARYING)
    values = tuple(fields[name] for name in ACCESS_VARYING)
    for _ in range(2):  # the layout made, then the layout reused
        _as_logged(configured_stream, lambda: kind.write(level, message, values), event)


def test_an_event_kind_follows_a_new_configuration_and_drops_secrets(
    configured_stream: io.StringIO,
) -> None:
    logger = logging.getLogger("minitwit.access")
    kind = logs.EventKind(logger, {"labels.app": "api", "password": "hunter2"}, ("user.name",))
    first = json.loads(_written(configured_stream, lambda: kind.write(INFO, "x", ("Ana",))))
    assert first["service"]["version"] == "9.9.9"
    assert "password" not in first
    assert "hunter2" not in json.dumps(first)
    assert first["http"]["request"]["id"] == "c0ffee"  # from the request's context
    # Configured again (another version): the layouts made for the old formatter go.
    line = kind.line(ecs_formatter("10.0.0", "test"), 1_700_000_000.25, "INFO", "x", 1, ("Ana",))
    assert line is not None
    second = json.loads(line)
    assert second["service"]["version"] == "10.0.0"


def test_the_access_kind_needs_no_fallback() -> None:
    """Guards the point of kinds: the common access events are laid out, not handed back."""
    kind = logs.EventKind(logging.getLogger("minitwit.access"), ACCESS_FIXED, ACCESS_VARYING)
    formatter = ecs_formatter("9.9.9", "test")
    for name in ("access event", "slow, a % in the path", "no user, no client, no request id"):
        level, message, fields = KIND_EVENTS[name]
        values = tuple(fields[field] for field in ACCESS_VARYING)
        assert kind.line(formatter, 1.0, logging.getLevelName(level), message, 1, values)


def test_an_event_kind_refuses_a_field_both_fixed_and_varying() -> None:
    with pytest.raises(ValueError, match=r"user\.name"):
        logs.EventKind(logging.getLogger("x"), {"user.name": "a"}, ("user.name",))


class _Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_direct_writer_steps_aside_for_a_handler_added_later(
    configured_stream: io.StringIO,
) -> None:
    """A handler someone added (pytest's caplog, say) still gets the event, through logging."""
    logger = logging.getLogger("minitwit.access")
    extra_handler = _Collecting()
    writer = logs._event_writer
    assert writer is not None
    logger.addHandler(extra_handler)
    try:
        assert _written(configured_stream, lambda: writer.write(logger, INFO, "x", {})) == ""
        line = _written(
            configured_stream, lambda: logs.write_event(logger, INFO, "hi", {"labels.app": "web"})
        )
    finally:
        logger.removeHandler(extra_handler)
    assert [record.getMessage() for record in extra_handler.records] == ["hi"]
    assert json.loads(line)["labels"] == {"app": "web"}  # and stdout still got its one line


def test_a_level_below_the_configured_one_writes_nothing(configured_stream: io.StringIO) -> None:
    logger = logging.getLogger("minitwit.access")
    logging.getLogger().setLevel(logging.WARNING)
    assert _written(configured_stream, lambda: logs.write_event(logger, INFO, "quiet", {})) == ""
    assert _written(configured_stream, lambda: logs.write_event(logger, WARNING, "loud", {}))


def test_on_the_event_loop_a_turns_events_are_written_together_after_it(
    configured_stream: io.StringIO,
) -> None:
    """One write per event-loop turn, in the order taken; nothing before the turn ends."""
    logger = logging.getLogger("minitwit.access")
    start = configured_stream.tell()

    async def two_events_in_one_turn() -> list[str]:
        logs.write_event(logger, INFO, "first", {"labels.app": "api"})
        logs.write_event(logger, WARNING, "second", {"labels.app": "web"})
        during = configured_stream.getvalue()[start:]
        await asyncio.sleep(0)  # the turn ends: the flush scheduled with call_soon runs
        return [during, configured_stream.getvalue()[start:]]

    during, after = asyncio.run(two_events_in_one_turn())
    assert during == ""
    lines = [json.loads(line) for line in after.splitlines()]
    assert [(line["message"], line["log.level"]) for line in lines] == [
        ("first", "info"),
        ("second", "warning"),
    ]


def _take_one_on_a_loop_that_stops(message: str) -> None:
    """One event taken in the last turn of a loop: its end-of-turn flush never runs."""

    async def take_one_and_stop() -> None:
        logs.write_event(logging.getLogger("minitwit.access"), INFO, message, {"labels.app": "api"})
        asyncio.get_running_loop().stop()

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(take_one_and_stop())
        loop.run_forever()
        assert task.done()
    finally:
        loop.close()


def test_what_a_stopped_loop_left_pending_is_written_at_exit(
    configured_stream: io.StringIO,
) -> None:
    """Taken events are not dropped when the loop stops before its flush ran."""
    start = configured_stream.tell()
    _take_one_on_a_loop_that_stops("pending")
    assert configured_stream.getvalue()[start:] == ""
    logs.flush_pending()  # what atexit runs
    assert json.loads(configured_stream.getvalue()[start:])["message"] == "pending"


def test_a_new_loop_writes_what_a_stopped_one_left_pending(
    configured_stream: io.StringIO,
) -> None:
    """The flush a stopped loop had scheduled never runs: the next loop's does."""
    start = configured_stream.tell()
    _take_one_on_a_loop_that_stops("left pending")

    async def take_one_more() -> None:
        logs.write_event(logging.getLogger("minitwit.access"), INFO, "on the next loop", {})
        await asyncio.sleep(0)

    assert configured_stream.getvalue()[start:] == ""
    asyncio.run(take_one_more())
    lines = configured_stream.getvalue()[start:].splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["left pending", "on the next loop"]
