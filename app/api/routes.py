"""Simulator API endpoints: parse, call the service layer, answer JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec

from quart import Blueprint, Response, current_app, jsonify, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    security_scheme,
)

from app.api import schemas
from app.api.auth import FORBIDDEN_MESSAGE, is_simulator
from app.errors import InvalidInput
from app.services import follows, latest, messages, users

bp = Blueprint("api", __name__)

P = ParamSpec("P")
Handler = Callable[P, Awaitable[Response]]

_INTEGER = re.compile(r"-?[0-9]{1,19}")
_INT64_MAX = 2**63 - 1


def error_response(status: int, message: str) -> Response:
    response = jsonify({"status": status, "error_msg": message})
    response.status_code = status
    return response


def no_content() -> Response:
    return Response("", status=204)


def _parse_latest(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not _INTEGER.fullmatch(raw) or abs(int(raw)) > _INT64_MAX:
        raise InvalidInput("Query parameter 'latest' must be an integer")
    return int(raw)


def _parse_no() -> int:
    raw = request.args.get("no")
    if raw is None or raw == "":
        return schemas.NO_DEFAULT
    if not _INTEGER.fullmatch(raw) or raw.startswith("-"):
        raise InvalidInput("Query parameter 'no' must be a non-negative integer")
    return min(int(raw), schemas.NO_MAX)


async def _json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    body = await request.get_data(as_text=False)
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("Request body must be valid JSON") from None
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
    even when it ends in a 400 or 404, so the id is recorded in ``finally``.
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
            try:
                return await handler(*args, **kwargs)
            finally:
                if action_id is not None:
                    await latest.record(action_id)

        return wrapper

    return decorate


def _message_json(post: messages.Post) -> dict[str, Any]:
    return {"content": post.text, "pub_date": post.pub_date, "user": post.username}


@bp.get("/latest")
@document_response(schemas.LatestResponse)
async def get_latest() -> Response:
    """The id of the last scenario action processed; -1 before any."""
    return jsonify({"latest": await latest.get()})


@bp.post("/register")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.RegisterRequest)
@document_response(schemas.Error, 400)
@scenario_action(requires_auth=False)
async def register() -> Response:
    """Register a user. Errors are checked in the documented order."""
    data = await _json_object()
    await users.register(
        _string_field(data, "username", required=False),
        _string_field(data, "email", required=False),
        _string_field(data, "pwd", required=False),
    )
    return no_content()


@bp.get("/msgs")
@document_querystring(schemas.ListQuery)
@document_response(schemas.MessageList)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@security_scheme([{"simulator": []}])
@scenario_action()
async def public_messages() -> Response:
    """Everyone's unflagged messages, newest first."""
    posts = await messages.public(_parse_no())
    return jsonify([_message_json(post) for post in posts])


@bp.get("/msgs/<path:username>")
@document_querystring(schemas.ListQuery)
@document_response(schemas.MessageList)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@security_scheme([{"simulator": []}])
@scenario_action()
async def user_messages(username: str) -> Response:
    """One user's unflagged messages, newest first."""
    limit = _parse_no()
    author_id = await users.get_id(username)
    posts = await messages.by_author(author_id, limit)
    return jsonify([_message_json(post) for post in posts])


@bp.post("/msgs/<path:username>")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.MessageIn)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@security_scheme([{"simulator": []}])
@scenario_action()
async def post_message(username: str) -> Response:
    """Post a message as ``username``."""
    data = await _json_object()
    content = _string_field(data, "content")
    author_id = await users.get_id(username)
    await messages.post(author_id, content)
    return no_content()


@bp.get("/fllws/<path:username>")
@document_querystring(schemas.ListQuery)
@document_response(schemas.FollowsOut)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
@security_scheme([{"simulator": []}])
@scenario_action()
async def get_follows(username: str) -> Response:
    """Whom ``username`` follows."""
    limit = _parse_no()
    user_id = await users.get_id(username)
    return jsonify({"follows": await follows.followed_usernames(user_id, limit)})


@bp.post("/fllws/<path:username>")
@document_querystring(schemas.LatestQuery)
@document_request(schemas.FollowRequest)
@document_response(schemas.Error, 400)
@document_response(schemas.Error, 403)
@document_response(schemas.Error, 404)
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
    who_id = await users.get_id(username)
    whom_id = await users.get_id(other)
    if action == "follow":
        await follows.follow(who_id, whom_id)
    else:
        await follows.unfollow(who_id, whom_id)
    return no_content()
