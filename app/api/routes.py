"""Simulator API endpoints: parse, call the service layer, answer JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec

from quart import Blueprint, Response, current_app, g, jsonify, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    security_scheme,
)

from app.api import schemas
from app.api.auth import FORBIDDEN_MESSAGE, is_simulator
from app.errors import InvalidInput
from app.observability import events
from app.services import follows, latest, messages, users

bp = Blueprint("api", __name__)

P = ParamSpec("P")
Handler = Callable[P, Awaitable[Response]]

_INTEGER = re.compile(r"-?[0-9]{1,19}")
_DIGITS = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1


def error_response(status: int, message: str) -> Response:
    # A message may echo input (an unknown username); a lone surrogate in it
    # cannot be encoded as UTF-8, so it is written as a visible escape instead.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    response = jsonify({"status": status, "error_msg": message})
    response.status_code = status
    return response


def no_content() -> Response:
    """A 204 says nothing about a body it cannot have: RFC 9110 forbids its
    Content-Length, which Quart sets (with a Content-Type) on every response."""
    response = Response(b"", status=204)
    response.headers.clear()
    return response


def _parse_latest(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw) or abs(int(raw)) > _INT64_MAX:
        raise InvalidInput("Query parameter 'latest' must be a 64-bit integer")
    return int(raw)


def _parse_no() -> int:
    """``?no=``: how many items to return (0 means none); values past the maximum are capped."""
    raw = request.args.get("no")
    if raw is None or raw == "":
        return schemas.NO_DEFAULT
    if not _DIGITS.fullmatch(raw):
        raise InvalidInput("Query parameter 'no' must be a non-negative integer")
    digits = raw.lstrip("0")
    if len(digits) > len(str(schemas.NO_MAX)):  # capped, however many digits it has
        return schemas.NO_MAX
    return min(int(digits or "0"), schemas.NO_MAX)


async def _json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    body = await request.get_data(as_text=False)  # received whole before the handler ran
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("Request body must be valid JSON") from None
    except RecursionError:
        raise InvalidInput("Request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object")
    return data


def _string_field(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"Field '{name}' is required")
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"Field '{name}' must be a string")
    return value


def scenario_action(*, requires_auth: bool = True) -> Callable[[Handler[P]], Handler[P]]:
    """Check the simulator's credentials, then record ``?latest=`` whatever the outcome.

    The contract counts an action as processed once it passed authorization,
    even when it ends in a 400 or 404. The handler hands ``pending_latest()``
    to the service, whose statement records it where it can (one round trip
    on PostgreSQL); whatever was not recorded is recorded in ``finally``. Once
    its request has arrived, the action runs to the end even if the client
    stops waiting: the API's connection class (``app.request.APIHTTPConnection``)
    receives the whole body first and never cancels a handler.
    """

    def decorate(handler: Handler[P]) -> Handler[P]:
        @wraps(handler)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
            if requires_auth:
                settings = current_app.config["SETTINGS"]
                header = request.headers.get("Authorization")
                if not is_simulator(
                    header, settings.simulator_username, settings.simulator_password
                ):
                    return error_response(403, FORBIDDEN_MESSAGE)
            action_id = _parse_latest(request.args.get("latest"))
            pending = None if action_id is None else latest.Pending(action_id)
            g.pending_latest = pending
            try:
                return await handler(*args, **kwargs)
            finally:
                if pending is not None:
                    await latest.settle(pending)
                    events.latest_recorded(pending.value)

        return wrapper

    return decorate


def pending_latest() -> latest.Pending | None:
    """This action's id, for a service statement that can record it in passing."""
    pending: latest.Pending | None = g.get("pending_latest")
    return pending


def _message_json(post: messages.Post) -> dict[str, Any]:
    return {"content": post.text, "pub_date": post.pub_date, "user": post.username}


@bp.get("/latest")
@document_response(schemas.LatestResponse)
@document_response(schemas.Error, 503)
async def get_latest() -> Response:
    """The id of the last scenario action processed; -1 before any."""
    return jsonify({"latest": await latest.get()})


@bp.post("/register")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.RegisterRequest)
@document_response(schemas.NoContent, 204)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 413)
@document_response(schemas.Error, 503)
@scenario_action(requires_auth=False)
async def register() -> Response:
    """Register a user. Errors are checked in the documented order."""
    data = await _json_object()
    username = _string_field(data, "username", required=False)
    await users.register(
        username,
        _string_field(data, "email", required=False),
        _string_field(data, "pwd", required=False),
    )
    events.user_registered("api", username)
    return no_content()


@bp.get("/msgs")
@document_querystring(schemas.ListQuery)
@document_response(schemas.MessageList)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 503)
@security_scheme([{"simulator": []}])
@scenario_action()
async def public_messages() -> Response:
    """Everyone's unflagged messages, newest first."""
    limit = _parse_no()
    posts = await messages.public(limit, pending=pending_latest())
    return jsonify([_message_json(post) for post in posts])


@bp.get("/msgs/<path:username>")
@document_querystring(schemas.ListQuery)
@document_response(schemas.MessageList)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@document_response(schemas.Error, 503)
@security_scheme([{"simulator": []}])
@scenario_action()
async def user_messages(username: str) -> Response:
    """One user's unflagged messages, newest first."""
    limit = _parse_no()
    posts = await messages.by_author_name(username, limit, pending=pending_latest())
    return jsonify([_message_json(post) for post in posts])


@bp.post("/msgs/<path:username>")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.MessageIn)
@document_response(schemas.NoContent, 204)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@document_response(schemas.Error, 413)
@document_response(schemas.Error, 503)
@security_scheme([{"simulator": []}])
@scenario_action()
async def post_message(username: str) -> Response:
    """Post a message as ``username``."""
    data = await _json_object()
    content = _string_field(data, "content")
    await messages.post(username, content, pending=pending_latest())
    events.message_posted("api", username)
    return no_content()


@bp.get("/fllws/<path:username>")
@document_querystring(schemas.ListQuery)
@document_response(schemas.FollowsOut)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@document_response(schemas.Error, 503)
@security_scheme([{"simulator": []}])
@scenario_action()
async def get_follows(username: str) -> Response:
    """Whom ``username`` follows."""
    limit = _parse_no()
    names = await follows.followed_usernames(username, limit, pending=pending_latest())
    return jsonify({"follows": names})


@bp.post("/fllws/<path:username>")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.FollowRequest)
@document_response(schemas.NoContent, 204)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@document_response(schemas.Error, 413)
@document_response(schemas.Error, 503)
@security_scheme([{"simulator": []}])
@scenario_action()
async def change_follow(username: str) -> Response:
    """Follow or unfollow: the body has exactly one of ``follow`` and ``unfollow``."""
    data = await _json_object()
    present = [key for key in ("follow", "unfollow") if key in data]
    if len(present) != 1:
        raise InvalidInput("Body must have exactly one of 'follow' and 'unfollow'")
    action = present[0]
    other = _string_field(data, action)
    if action == "follow":
        await follows.follow(username, other, pending=pending_latest())
        events.followed("api", username, other)
    else:
        await follows.unfollow(username, other, pending=pending_latest())
        events.unfollowed("api", username, other)
    return no_content()
