"""``app.request.Request``: Quart's request, its ``blueprints`` computed without an import."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quart import Blueprint, Quart, request

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
