"""``/health`` on each port: 200 when the database answers, 503 otherwise.

Load balancers and keepalived take a replica out of rotation on the 503, so
the check is a real round trip to the database with a short timeout.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app, jsonify
from quart_schema import document_response

from app import db
from app.api.schemas import Health

bp = Blueprint("health", __name__)


@bp.get("/health")
@document_response(Health)
@document_response(Health, 503)
async def health() -> Response:
    """Liveness and readiness in one: is the database reachable from this replica?"""
    if await db.ping(current_app.config["SETTINGS"]):
        return jsonify({"status": "ok", "database": "ok"})
    response = jsonify({"status": "unavailable", "database": "unreachable"})
    response.status_code = 503
    return response
