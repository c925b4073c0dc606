"""``app.request``: Quart's request and connection classes, with the same behaviour:
blueprints named as Quart names them, and the body and response timeouts still bounding
a client that stalls."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from quart import Blueprint, Quart, Response, request

from app.factory import create_api_app, create_web_app
from app.request import Request


@pytest.mark.parametrize("create", [create_web_app, create_api_app])
async def test_blueprints_name_the_blueprint_then_its_parents(create: Callable[[], Quart]) -> None:
    """As Quart's own: what its hooks and error handlers go by, on a real request."""
    app = create()
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)
    seen: list[list[str]] = []

    @inner.get("/chain")
    async def chain() -> dict[str, list[str]]:
        return {"blueprints": request.blueprints}

    @outer.before_request
    async def outer_hook() -> None:  # Quart runs it only if "outer" is in request.blueprints
        seen.append(list(request.blueprints))

    outer.register_blueprint(inner, url_prefix="/inner")
    app.register_blueprint(outer, url_prefix="/outer")
    response = await app.test_client().get("/outer/inner/chain")
    assert response.status_code == 200
    assert (await response.get_json())["blueprints"] == ["outer.inner", "outer"]
    assert seen == [["outer.inner", "outer"]]
    assert app.request_class is Request


async def _call(app: Quart, scope: dict[str, Any], body_arrives: bool, reader_reads: bool) -> int:
    """One request through the app's ASGI interface, the client stalling where told to;
    its status. Bounded, so that a timeout that does not fire fails instead of hanging."""
    status = 0
    stalled = asyncio.Event()
    body = [{"type": "http.request", "body": b"{}", "more_body": False}] if body_arrives else []

    async def receive() -> dict[str, Any]:
        if body:
            return body.pop()
        await stalled.wait()  # the body never comes (or, once it came, nothing more)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not reader_reads:
            await stalled.wait()  # a client that stopped reading

    async with asyncio.timeout(10):
        await app(scope, receive, send)
    return status


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 5001),
    }  # fmt: skip


async def test_a_body_that_never_arrives_is_a_408_after_the_body_timeout() -> None:
    app = create_api_app()
    app.config["BODY_TIMEOUT"] = 0.2
    credentials = base64.b64encode(b"simulator:super_safe!")
    headers = [
        (b"authorization", b"Basic " + credentials),
        (b"content-type", b"application/json"),
        (b"content-length", b"60"),
    ]
    scope = _scope("POST", "/register", headers)
    assert await _call(app, scope, body_arrives=False, reader_reads=True) == 408


async def test_a_body_read_that_never_ends_is_a_408_on_the_web_too() -> None:
    """The web app keeps Quart's receiving task: there the read itself is bounded."""
    app = create_web_app()
    app.config["BODY_TIMEOUT"] = 0.2

    @app.post("/raw")
    async def raw() -> bytes:
        return await request.get_data()  # type: ignore[return-value]

    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"60")]
    scope = _scope("POST", "/raw", headers)
    assert await _call(app, scope, body_arrives=False, reader_reads=True) == 408


async def test_a_response_nobody_reads_is_given_up_after_the_response_timeout() -> None:
    app = create_api_app()
    app.config["RESPONSE_TIMEOUT"] = 0.2
    # The call returns (within _call's bound) although the client never read the body.
    scope = _scope("GET", "/no-such-page", [])
    assert await _call(app, scope, body_arrives=True, reader_reads=False) == 404


class _Client:
    """The ASGI side of one request: the body in ``parts``, then whatever ``after_body``
    says (``"leave"``: disconnect at once; ``"wait"``: stay); what was sent back."""

    def __init__(self, parts: list[bytes], after_body: str) -> None:
        self.messages = [
            {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
            for index, part in enumerate(parts)
        ]
        self.after_body = after_body
        self.status: int | None = None
        self.stay = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.messages:
            return self.messages.pop(0)
        if self.after_body != "leave":
            await self.stay.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def _with_slow_echo(app: Quart, finished: list[bytes]) -> Quart:
    @app.post("/slow-echo")
    async def slow_echo() -> tuple[str, int]:
        body = await request.get_data()
        await asyncio.sleep(0.05)  # the client leaves meanwhile
        finished.append(body)
        return "", 204

    return app


async def _serve(app: Quart, client: _Client) -> None:
    headers = [(b"content-type", b"application/octet-stream")]
    async with asyncio.timeout(10):
        await app(_scope("POST", "/slow-echo", headers), client.receive, client.send)


async def test_an_api_request_whose_client_left_after_its_body_runs_to_the_end() -> None:
    """The simulator's timeout must not cut an action short: the handler finishes and
    answers (the server drops the answer); on the web, Quart cancels it as before."""
    finished: list[bytes] = []
    api, web = (_with_slow_echo(create(), finished) for create in (create_api_app, create_web_app))
    client = _Client([b"whole"], after_body="leave")
    await _serve(api, client)
    assert (finished, client.status) == ([b"whole"], 204)

    finished.clear()
    client = _Client([b"whole"], after_body="leave")
    await _serve(web, client)
    assert (finished, client.status) == ([], None)


async def test_an_api_body_in_parts_is_received_whole_before_the_handler_runs() -> None:
    finished: list[bytes] = []
    api = _with_slow_echo(create_api_app(), finished)
    client = _Client([b"one ", b"two ", b"three"], after_body="wait")
    await _serve(api, client)
    assert (finished, client.status) == ([b"one two three"], 204)


async def test_an_api_client_that_leaves_mid_body_ends_the_request_before_it_starts() -> None:
    finished: list[bytes] = []
    api = _with_slow_echo(create_api_app(), finished)
    client = _Client([b"one ", b"two "], after_body="leave")
    client.messages[-1]["more_body"] = True  # the rest never comes: the client is gone
    await _serve(api, client)
    assert (finished, client.status) == ([], None)


async def test_the_api_still_converts_a_returned_model_and_keeps_a_response_as_it_is() -> None:
    """quart-schema's conversion is skipped only for what it would not change."""
    app = create_api_app()

    @dataclass
    class Point:
        x: int

    @app.get("/point")
    async def point() -> Point:
        return Point(1)

    @app.get("/made")
    async def made() -> Response:
        return Response("as is", status=201, headers={"X-Made": "here"})

    client = app.test_client()
    converted = await client.get("/point")
    assert (converted.status_code, await converted.get_json()) == (200, {"x": 1})
    kept = await client.get("/made")
    assert (kept.status_code, await kept.get_data(), kept.headers["X-Made"]) == (
        201,
        b"as is",
        "here",
    )
