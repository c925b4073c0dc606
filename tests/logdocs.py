"""Helpers for the logging tests: read JSON log lines, flatten them, make real ones.

``app_log_lines`` drives the real web and API apps (Quart test clients, the
real middleware, events and ECS formatter, a SQLite database) through every
kind of event the app logs, and returns the lines it wrote: the index
template, the pipeline samples and the Kibana searches are checked against
what the app actually emits, not against a description of it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app import __version__
from app.db import migrate
from app.factory import create_api_app, create_web_app
from app.observability import logs
from tests.conftest import SIMULATOR_AUTH, make_settings

PASSWORD = "Correct-Horse-Battery-Staple-7"


def parse_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line as a JSON object; a line that is not one fails loudly."""
    parsed = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            context = "\n".join(lines[number - 1 : number + 30])
            raise AssertionError(f"log line {number} is not JSON:\n{context}") from exc
        assert isinstance(value, dict), f"log line {number} is not a JSON object: {line!r}"
        parsed.append(value)
    return parsed


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"http": {"response": {"status_code": 200}}, "log.level": "info"}`` ->
    ``{"http.response.status_code": 200, "log.level": "info"}``: a literal dotted key
    and a nested path name the same field, as they do in Elasticsearch."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


@contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[io.StringIO]:
    """Add the app's own stdout handler (ECS formatter, request id, scrub) over a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.ecs_formatter(__version__, "test"))
    handler.addFilter(logs.RequestContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def _drive(database_url: str) -> None:
    settings = make_settings(database_url, slow_request_seconds=0.05)
    api = create_api_app(settings)
    async with api.test_app() as running:
        client = running.test_client()
        for name in ("alice", "bob"):
            response = await client.post(
                "/register", json={"username": name, "email": f"{name}@x.dk", "pwd": PASSWORD}
            )
            assert response.status_code == 204, await response.get_data()
        await client.post("/msgs/alice", json={"content": "hello"}, headers=SIMULATOR_AUTH)
        await client.post("/fllws/alice", json={"follow": "bob"}, headers=SIMULATOR_AUTH)
        await client.post("/fllws/alice", json={"unfollow": "bob"}, headers=SIMULATOR_AUTH)
        response = await client.post("/msgs/ghost", json={"content": "boo"}, headers=SIMULATOR_AUTH)
        assert response.status_code == 404
        await client.get("/msgs", headers={**SIMULATOR_AUTH, "X-Request-ID": "sim-42"})
        await client.get("/health")

    web = create_web_app(settings)

    @web.get("/_test/boom")
    async def boom() -> str:
        raise RuntimeError("a bug, on purpose")

    @web.get("/_test/slow")
    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "slow"

    async with web.test_app() as running:
        client = running.test_client()
        await client.post(
            "/register",
            form={
                "username": "carol",
                "email": "carol@x.dk",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
        )
        await client.post("/login", form={"username": "carol", "password": "wrong"})
        await client.post("/login", form={"username": "carol", "password": PASSWORD})
        await client.post("/add_message", form={"text": "hi from the web"})
        await client.get("/alice/follow")
        await client.get("/nobody-here")
        await client.get("/_test/slow")
        response = await client.get("/_test/boom")
        assert response.status_code == 500
        assert response.headers.get("X-Request-ID"), "the 500 page returns its request id too"


def app_log_lines(directory: Path) -> list[dict[str, Any]]:
    """Every line the real apps log for the events above (sign-up to internal error)."""
    url = f"sqlite://{directory / 'logs.db'}"
    asyncio.run(migrate(make_settings(url), progress=lambda _: None))
    with captured_logs() as buffer:
        asyncio.run(_drive(url))
    return parse_lines(buffer.getvalue())
