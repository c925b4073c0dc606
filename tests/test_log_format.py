"""The app's ECS formatter writes exactly what ecs-logging's own formatter writes.

``app.observability.logs`` builds the common event (no exception, flat
extras) itself, because the library's generic path cost a fifth of a
simulator action's CPU. These tests hold it to the library, line for line,
for the events the app writes and for the unusual ones it hands back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import ecs_logging
import pytest

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


def test_the_access_event_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the point of the override: the common event never reaches the library's path."""
    formatter = ecs_formatter("9.9.9", "test")

    def refuse(self: Any, record: logging.LogRecord) -> dict[str, Any]:
        raise AssertionError("the library's generic path was used")

    monkeypatch.setattr(ecs_logging.StdlibFormatter, "format_to_ecs", refuse)
    line = formatter.format(_record(RECORDS["access event"]))
    assert '"http":{"request":{"id":"c903bdbefdf74fe484a65f7bb4efb27b","method":"POST"}' in line
