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

from quart import Quart, Response, g, request

from app.observability import logs, metrics

Scope = dict[str, Any]
ROUTE_KEY = "minitwit.route"
USER_KEY = "minitwit.user"
UNMATCHED_ROUTE = "<unmatched>"
# nginx's status for a request whose client disconnected before the response.
CLIENT_CLOSED_REQUEST = 499
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_log = logging.getLogger("minitwit.access")


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
        # Labelled children by (method, route, status): ``labels()`` takes a lock and
        # builds its key on each call; the label values are bounded, so is this.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

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
        children = self._children.get((method, route, status))
        if children is None:
            children = self._children[(method, route, status)] = (
                metrics.HTTP_REQUESTS.labels(self.surface, method, route, str(status)),
                metrics.HTTP_DURATION.labels(self.surface, method, route),
            )
        requests, durations = children
        requests.inc()
        durations.observe(duration)
        slow = duration >= self.slow_threshold
        level = logging.WARNING if slow else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        logs.write_event(
            access_log,
            level,
            f"{method} {scope.get('path', '')} -> {status} in {duration * 1000:.1f} ms"
            + (" (slow)" if slow else ""),
            {
                "event.dataset": "minitwit.access",
                "event.action": "slow-request" if slow else "http-request",
                "event.category": "web",
                "event.outcome": _outcome(status),
                "event.duration": int(duration * 1e9),
                "http.request.method": method,
                "http.response.status_code": status,
                "http.route": route,
                "url.path": _full_path(scope),
                "client.ip": client[0] if client else None,
                "user.name": scope.get(USER_KEY),
                "user_agent.original": user_agent,
                "labels.app": self.surface,
                "http.request.id": rid,
            },
        )


def install(app: Quart, surface: str, slow_threshold: float) -> None:
    """Wrap the app's ASGI callable and teach it to tell the middleware its route template
    and the user (``user.name`` for the access event, where known)."""
    if surface == "api":

        @app.before_request
        async def remember_route_and_user() -> None:
            """On the API the user is the one the path names (the simulator acts as, or
            reads, them): known once the route matched, so one hook does both."""
            current = request._get_current_object()  # type: ignore[attr-defined]
            rule, scope, view_args = current.url_rule, current.scope, current.view_args
            if rule is not None:
                scope[ROUTE_KEY] = rule.rule
            if view_args and "username" in view_args:
                scope[USER_KEY] = str(view_args["username"])

    else:

        @app.before_request
        async def remember_route() -> None:
            rule = request.url_rule
            if rule is not None:
                request.scope[ROUTE_KEY] = rule.rule  # type: ignore[literal-required]

        @app.after_request
        async def remember_user(response: Response) -> Response:
            """The signed-in user, whom the web blueprint loads after the hook above."""
            user = g.get("user")
            if user is not None:
                request.scope[USER_KEY] = user.username  # type: ignore[literal-required]
            return response

    app.asgi_app = RequestObserver(app.asgi_app, surface, slow_threshold)  # type: ignore[method-assign,assignment]
