"""A test-only fault switch: make requests fail or slow down on demand.

The end-to-end alerting tests need real 5xx responses and real latency to
prove the error-ratio and latency alerts fire. The switch exists only when
``MINITWIT_FAULT_INJECTION`` is on, which ``Settings.check`` refuses in
production; by default the routes and the hook are not even registered.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from quart import Blueprint, Quart, Response, jsonify, request

from app.errors import InvalidInput

CONTROL_PATH = "/_faults"
EXEMPT_PATHS = frozenset({CONTROL_PATH, "/health", "/metrics"})


@dataclass
class FaultState:
    error_ratio: float = 0.0
    delay_seconds: float = 0.0


state = FaultState()
bp = Blueprint("faults", __name__)


@bp.get(CONTROL_PATH)
async def show() -> Response:
    return jsonify({"error_ratio": state.error_ratio, "delay_seconds": state.delay_seconds})


@bp.put(CONTROL_PATH)
async def set_faults() -> Response:
    data = await request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("Body must be a JSON object")
    try:
        error_ratio = float(data.get("error_ratio", 0.0))
        delay_seconds = float(data.get("delay_seconds", 0.0))
    except (TypeError, ValueError):
        raise InvalidInput("error_ratio and delay_seconds must be numbers") from None
    if not 0.0 <= error_ratio <= 1.0 or not 0.0 <= delay_seconds <= 10.0:
        raise InvalidInput("error_ratio must be in [0, 1] and delay_seconds in [0, 10]")
    state.error_ratio, state.delay_seconds = error_ratio, delay_seconds
    return await show()


async def inject() -> Response | None:
    if request.path in EXEMPT_PATHS:
        return None
    if state.delay_seconds:
        await asyncio.sleep(state.delay_seconds)
    if state.error_ratio and random.random() < state.error_ratio:
        response = jsonify({"status": 500, "error_msg": "injected fault"})
        response.status_code = 500
        return response
    return None


def install(app: Quart) -> None:
    app.before_request(inject)
    app.register_blueprint(bp)
