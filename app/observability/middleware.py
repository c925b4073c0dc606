"""The request middleware: one place where every HTTP request is measured and logged.

It is the class Quart handles each HTTP request with, so it sees the status
that really went out (error pages included) and the time until the response
was sent. It sets
the request id (from ``X-Request-ID`` when the caller sent a sane one) for
every log line of the request, returns it in the response, counts and times
the request by route template, and writes one access event (with the user,
where the app knows one).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Mapping
from typing import Any, cast

from quart import Quart, Request
from quart.asgi import ASGIHTTPConnection
from quart.globals import request_ctx

from app.observability import logs, metrics

Scope = Mapping[str, Any]
USER_KEY = "minitwit.user"
UNMATCHED_ROUTE = "<unmatched>"
# nginx's status for a request whose client disconnected before the response.
CLIENT_CLOSED_REQUEST = 499
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("minitwit.access")
# What each access event says besides its surface (the values of _record, in order).
ACCESS_FIELDS = (
    "event.action",
    "event.outcome",
    "event.duration",
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "url.path",
    "client.ip",
    "user.name",
    "user_agent.original",
    "http.request.id",
)


def _request_id_and_user_agent(scope: Scope) -> tuple[str, str | None]:
    """The caller's ``X-Request-ID`` when it is sane (else a new one), and its User-Agent."""
    request_id = user_agent = None
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and request_id is None:
            candidate = value.decode("latin-1")
            request_id = candidate if _REQUEST_ID.fullmatch(candidate) else ""
        elif name == b"user-agent" and user_agent is None:
            user_agent = value.decode("latin-1")
    # An id only has to be unique, not secret: Python's PRNG, not a getrandom call per request.
    return request_id or f"{random.getrandbits(128):032x}", user_agent


def _full_path(scope: Scope) -> str:
    """The path the client asked for. ASGI's ``path`` already includes ``root_path``
    (the API under /api on the web port); older servers left it out."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path if path.startswith(root) else root + path


def _outcome(status: int) -> str:
    if status == CLIENT_CLOSED_REQUEST:
        return "unknown"
    return "failure" if status >= 500 else "success"


class RequestObserver:
    """One surface's request metrics and access event."""

    def __init__(self, surface: str, slow_threshold: float) -> None:
        self.surface = surface
        self.slow_threshold = slow_threshold
        self.in_progress = metrics.IN_PROGRESS[surface]
        self.requests = metrics.REQUESTS[surface]
        self.user_of = _signed_in_user if surface == "web" else _user_in_path
        self.access_event = logs.EventKind(
            access_log,
            fixed={
                "event.dataset": "minitwit.access",
                "event.category": "web",
                "labels.app": surface,
            },
            varying=ACCESS_FIELDS,
        )

    def record(
        self,
        request: Request,
        scope: Scope,
        status: int,
        duration: float,
        rid: str,
        user_agent: str | None,
    ) -> None:
        rule = request.url_rule
        route = UNMATCHED_ROUTE if rule is None else rule.rule
        method = scope.get("method", "GET")
        self.requests.add(method, route, status, duration)
        slow = duration >= self.slow_threshold
        level = logging.WARNING if slow else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        self.access_event.write(
            level,
            f"{method} {scope.get('path', '')} -> {status} in {duration * 1000:.1f} ms"
            + (" (slow)" if slow else ""),
            (
                "slow-request" if slow else "http-request",
                _outcome(status),
                int(duration * 1e9),
                method,
                status,
                route,
                _full_path(scope),
                client[0] if client else None,
                self.user_of(request),
                user_agent,
                rid,
            ),
        )


class ObservedHTTPConnection(ASGIHTTPConnection):
    """Quart's handling of one HTTP request (``Quart.asgi_http_class``), measured and logged.

    Inside Quart rather than around its ASGI callable: it sees the response
    Quart sends (error pages included) and the request it matched, so one
    coroutine does what took an ASGI wrapper, a ``send`` wrapper and a
    dispatch wrapper, the largest part of observability's cost per request.
    """

    observer: RequestObserver  # the surface's, set by ``install``
    status: int | None = None
    request_id = ""

    async def handle_request(self, request: Request, send: Any) -> None:
        scope = self.scope
        rid, user_agent = _request_id_and_user_agent(scope)
        self.request_id = rid
        token = logs.request_id.set(rid)
        in_progress = self.observer.in_progress
        start = time.perf_counter()
        in_progress.value += 1
        cancelled = False
        try:
            await super().handle_request(request, send)
        except asyncio.CancelledError:
            cancelled = True  # Quart cancels the handler when the client goes away
            raise
        finally:
            duration = time.perf_counter() - start
            in_progress.value -= 1
            status = self.status
            if status is None:  # no response went out: 499 is no server error
                status = CLIENT_CLOSED_REQUEST if cancelled else 500
            self.observer.record(request, scope, status, duration, rid, user_agent)
            logs.request_id.reset(token)

    async def _send_response(self, send: Any, response: Any) -> None:
        """Quart's last step before the response goes out: where its status and the
        ``X-Request-ID`` header are known and settable for every kind of response."""
        self.status = response.status_code
        response.headers.add("X-Request-ID", self.request_id)
        await super()._send_response(send, response)


def install(app: Quart, surface: str, slow_threshold: float) -> None:
    """Have the app handle its HTTP requests through an ``ObservedHTTPConnection``."""
    observer = RequestObserver(surface, slow_threshold)
    app.asgi_http_class = type(
        f"Observed{surface.title()}Connection", (ObservedHTTPConnection,), {"observer": observer}
    )


def note_signed_in_user(username: str) -> None:
    """Name the signed-in user in this request's access event: the web UI knows
    them only while it handles the request (in ``g``, gone when it is done)."""
    request_ctx.request.scope[USER_KEY] = username  # type: ignore[literal-required]


def _signed_in_user(request: Request) -> str | None:
    """On the web UI, the user signed in, where the web blueprint named them."""
    return cast(str | None, request.scope.get(USER_KEY))


def _user_in_path(current: Request) -> str | None:
    """On the API, the user the path names: the simulator acts as, or reads, them."""
    view_args = current.view_args
    return str(view_args["username"]) if view_args and "username" in view_args else None
