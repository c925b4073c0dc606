"""Domain events: each one counts in its metric (tallied: ``metrics.CountTally``) and
writes one info log line.

The HTTP layers call these after the service layer succeeded (or, for a user
that does not exist, failed), because only they know the surface (web/api).
"""

from __future__ import annotations

import logging

from app.observability import logs, metrics

log = logging.getLogger("minitwit.events")


def _event(action: str, message: str, fields: dict[str, object]) -> None:
    # One per simulator write: the direct writer, as for the access event.
    logs.write_event(
        log,
        logging.INFO,
        message,
        {"event.dataset": "minitwit.events", "event.action": action, **fields},
    )


def user_registered(source: str, username: str) -> None:
    metrics.count(metrics.REGISTRATIONS, source)
    _event("user-registered", f"user {username!r} registered", {"user.name": username})


def message_posted(source: str, username: str) -> None:
    metrics.count(metrics.MESSAGES_POSTED, source)
    _event("message-posted", f"{username!r} posted a message", {"user.name": username})


def followed(source: str, who: str, whom: str) -> None:
    metrics.count(metrics.FOLLOWS, source)
    _event(
        "user-followed",
        f"{who!r} follows {whom!r}",
        {"user.name": who, "user.target.name": whom},
    )


def unfollowed(source: str, who: str, whom: str) -> None:
    metrics.count(metrics.UNFOLLOWS, source)
    _event(
        "user-unfollowed",
        f"{who!r} unfollowed {whom!r}",
        {"user.name": who, "user.target.name": whom},
    )


def user_not_found(surface: str, username: str) -> None:
    metrics.count(metrics.USERS_NOT_FOUND, surface)
    _event(
        "user-not-found",
        f"unknown user {username!r}",
        {"user.target.name": username, "event.outcome": "failure", "labels.app": surface},
    )


def login(ok: bool, username: str) -> None:
    metrics.count(metrics.LOGINS, "ok" if ok else "failed")
    _event(
        "user-login" if ok else "user-login-failed",
        f"sign-in {'succeeded' if ok else 'failed'} for {username!r}",
        {"user.name": username, "event.outcome": "success" if ok else "failure"},
    )


def latest_recorded(value: int) -> None:
    metrics.SIMULATOR_LATEST.set(value)


def request_failed(kind: str, exc: BaseException) -> None:
    """A request we could not serve: the database was out, or a bug."""
    metrics.count(metrics.ERRORS, kind)
    if kind == "database_unavailable":
        log.warning(
            "database unavailable: %s",
            type(exc).__name__,
            extra={
                "event.dataset": "minitwit.events",
                "event.action": "database-unavailable",
                "error.type": type(exc).__name__,
                "error.message": str(exc),
            },
        )
    else:
        # ecs-logging writes error.type, error.message and error.stack_trace from
        # exc_info; passing them in ``extra`` as well made it refuse the record.
        log.error(
            "unhandled error: %s",
            type(exc).__name__,
            exc_info=exc,
            extra={"event.dataset": "minitwit.events", "event.action": "internal-error"},
        )
