"""The request middleware: one place where every HTTP request is measured and logged.

It wraps each Quart app's ASGI callable, so it sees the status that really
went out (error pages included) and the full time to the last byte. It sets
the request id (from ``X-Request-ID`` when the caller sent a sane one) for
every log line of the request, returns it in the response, counts and times
the request by route template, and writes one access event (with the user,
where the app knows one).
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from quart import Quart, Request, g
from quart.ctx import RequestContext
from quart.globals import request_ctx

from app.observability import logs, metrics

Scope = dict[str, Any]
ROUTE_KEY = "minitwit.route"
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
    def __init__(self, app: Any, surface: str, slow_threshold: float) -> None:
        self.app = app
        self.surface = surface
        self.slow_threshold = slow_threshold
        self.in_progress = metrics.IN_PROGRESS[surface]
        self.requests = metrics.REQUESTS[surface]
        self.access_event = logs.EventKind(
            access_log,
            fixed={
                "event.dataset": "minitwit.access",
                "event.category": "web",
                "labels.app": surface,
            },
            varying=ACCESS_FIELDS,
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid, user_agent = _request_id_and_user_agent(scope)
        token = logs.request_id.set(rid)
        status: int | None = None
        header_value = rid.encode("latin-1")

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", header_value)]
            await send(message)

        start = time.perf_counter()
        self.in_progress.value += 1
        returned = False
        try:
            await self.app(scope, receive, send_with_id)
            returned = True
        finally:
            duration = time.perf_counter() - start
            self.in_progress.value -= 1
            if status is None:
                # No response went out: the app failed (500), or Quart cancelled the
                # handler because the client went away, which is no server error.
                status = CLIENT_CLOSED_REQUEST if returned else 500
            self._record(scope, status, duration, rid, user_agent)
            logs.request_id.reset(token)

    def _record(
        self, scope: Scope, status: int, duration: float, rid: str, user_agent: str | None
    ) -> None:
        route = scope.get(ROUTE_KEY) or UNMATCHED_ROUTE
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
                scope.get(USER_KEY),
                user_agent,
                rid,
            ),
        )


def install(app: Quart, surface: str, slow_threshold: float) -> None:
    """Wrap the app's ASGI callable, and its request dispatch so that the middleware
    learns the route template and the user (``user.name`` for the access event)."""
    dispatch = app.full_dispatch_request
    user_of = _signed_in_user if surface == "web" else _user_in_path

    async def dispatch_and_remember(request_context: RequestContext | None = None) -> Any:
        """Around everything Quart does with a request (hooks, view, error handlers),
        also when a hook answers or the client leaves: cheaper than two hooks."""
        try:
            return await dispatch(request_context)
        finally:
            current = (request_context or request_ctx).request
            rule = current.url_rule
            if rule is not None:
                current.scope[ROUTE_KEY] = rule.rule  # type: ignore[literal-required]
            user = user_of(current)
            if user is not None:
                current.scope[USER_KEY] = user  # type: ignore[literal-required]

    app.full_dispatch_request = dispatch_and_remember  # type: ignore[method-assign]
    app.asgi_app = RequestObserver(app.asgi_app, surface, slow_threshold)  # type: ignore[method-assign,assignment]


def _signed_in_user(_request: Request) -> str | None:
    """On the web UI, the user signed in (the web blueprint loads them into ``g``)."""
    user = g.get("user")
    return None if user is None else str(user.username)


def _user_in_path(current: Request) -> str | None:
    """On the API, the user the path names: the simulator acts as, or reads, them."""
    view_args = current.view_args
    return str(view_args["username"]) if view_args and "username" in view_args else None
