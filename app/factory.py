"""The app factories: one Quart app per HTTP surface, sharing the service layer.

``create_web_app`` serves the HTML UI on the web port; ``create_api_app``
serves the simulator API on its own port (and, through ``app.asgi``, under
``/api`` on the web port). Both open the same database pool when they start
serving and share one error policy: expected failures become 4xx, a database
outage becomes 503, and nothing else leaks a stack trace to the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quart import Quart, Response, render_template
from quart.sessions import SecureCookieSessionInterface
from quart.typing import ResponseTypes
from quart.wrappers import BaseRequestWebsocket
from quart_schema import Info, QuartSchema
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from app import __version__, db, faults, passwords
from app.api.auth import FORBIDDEN_MESSAGE
from app.api.openapi import SimulatorOpenAPIProvider
from app.config import Settings
from app.errors import InvalidInput, UserNotFound, is_database_outage
from app.observability import events, middleware
from app.observability.metrics import exposition
from app.request import APIHTTPConnection, HTTPConnection, Request

MAX_BODY_BYTES = 1024 * 1024
PACKAGE_DIR = Path(__file__).parent


class UsernameConverter(PathConverter):
    """The rest of the path, whatever it holds: werkzeug's ``path`` refuses a leading
    slash, and a simulator username arrives URL-encoded and decoded into the path."""

    regex = ".+"
    part_isolating = False  # werkzeug would guess True: the regex has no "/" in it


def _base_app(import_name: str, surface: str, settings: Settings) -> Quart:
    app = Quart(
        import_name,
        template_folder=str(PACKAGE_DIR / "templates"),
        # The API serves no files: only what its OpenAPI description lists.
        static_folder=str(PACKAGE_DIR / "static") if surface == "web" else None,
    )
    app.request_class = Request
    app.asgi_http_class = HTTPConnection
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="minitwit_session",
    )

    _json_as_written(app)

    @app.before_serving
    async def open_database() -> None:
        passwords.configure(settings.hash_concurrency)
        await db.connect(settings)

    @app.after_serving
    async def close_database() -> None:
        await db.close()

    from app.health import bp as health_bp

    app.register_blueprint(health_bp)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus scrape endpoint (all workers' values, summed)."""
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    if settings.observability:  # MINITWIT_OBSERVABILITY=off: a benchmarking knob only
        middleware.install(app, surface, settings.slow_request_seconds)
    if settings.fault_injection:
        faults.install(app)
    return app


def _failure_kind(exc: Exception) -> str:
    kind = "database_unavailable" if is_database_outage(exc) else "internal"
    events.request_failed(kind, exc)
    return kind


def _json_as_written(app: Quart) -> None:
    """UTF-8 out as it came in (no \\u escapes), keys in the order the code writes them."""
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]


def _responses_as_they_are(app: Quart) -> None:
    """Hand a ``Response`` straight to Quart, past quart-schema's conversion.

    quart-schema wraps ``make_response`` to turn a returned model (a dataclass,
    a pydantic model) into JSON; for a ``Response`` it changes nothing, after
    two rounds of type checks and six config reads on every request, and every
    API handler and error handler returns a ``Response``. Anything else is
    still converted.
    """
    converting = app.make_response
    plain = getattr(converting, "__wrapped__", None)  # quart-schema's functools.wraps
    if plain is None:
        return

    async def make_response(result: Any) -> ResponseTypes:
        if isinstance(result, Response):
            return await plain(result)
        return await converting(result)

    app.make_response = make_response  # type: ignore[method-assign]


class _NoSessions(SecureCookieSessionInterface):
    """The API authenticates each request (Basic) and keeps no session: reading and
    verifying a session cookie on every simulator request was work for nothing."""

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> None:
        return None


def create_api_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    app = _base_app("app.api", "api", settings)
    # A username may hold any slashes (/msgs/%2Flead is user "/lead"); werkzeug's
    # default merges doubled ones with a redirect, to another user's path. The
    # converter takes the name "path" so that the route templates, which are the
    # metrics' and the logs' route label, stay /msgs/<path:username>.
    app.url_map.merge_slashes = False
    app.url_map.converters["path"] = UsernameConverter
    app.asgi_http_class = APIHTTPConnection
    app.session_interface = _NoSessions()
    QuartSchema(
        app,
        info=Info(
            title="MiniTwit simulator API",
            version=__version__,
            description=(
                "The API the MiniTwit simulator drives. Served at the root of the API port "
                "(5001) and under /api on the web port. Errors are JSON "
                '{"status": <code>, "error_msg": <text>}.'
            ),
        ),
        security_schemes={"simulator": {"type": "http", "scheme": "basic"}},
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=SimulatorOpenAPIProvider,
    )

    _json_as_written(app)  # again: QuartSchema installed its own JSON provider
    _responses_as_they_are(app)
    from app.api.routes import bp, error_response

    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        message = exc.description or exc.name
        if code == 403:
            message = FORBIDDEN_MESSAGE
        elif code == 404:
            message = "No such resource"
        elif code == 413:
            message = f"Request body too large (at most {MAX_BODY_BYTES} bytes)"
        response = error_response(code, message)
        if code == 405 and exc.get_headers():
            response.headers.update({k: v for k, v in exc.get_headers() if k.lower() == "allow"})
        return response

    @app.errorhandler(InvalidInput)
    async def invalid_input(exc: InvalidInput) -> Response:
        return error_response(400, exc.message)

    @app.errorhandler(UserNotFound)
    async def user_not_found(exc: UserNotFound) -> Response:
        events.user_not_found("api", exc.username)
        return error_response(404, exc.message)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        if _failure_kind(exc) == "database_unavailable":
            return error_response(503, "The database is unavailable; try again shortly")
        return error_response(500, "Internal server error")

    return app


def create_web_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    app = _base_app("app.web", "web", settings)

    from app.web import filters
    from app.web.views import bp

    filters.register(app)
    app.register_blueprint(bp)

    async def error_page(status: int, title: str, message: str) -> tuple[str, int]:
        return await render_template("error.html", title=title, message=message), status

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[str, int]:
        return await error_page(exc.code or 500, exc.name, exc.description or exc.name)

    @app.errorhandler(UserNotFound)
    async def user_not_found(exc: UserNotFound) -> tuple[str, int]:
        events.user_not_found("web", exc.username)
        return await error_page(404, "Not Found", "There is no such user.")

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[str, int]:
        if _failure_kind(exc) == "database_unavailable":
            return await error_page(
                503, "Service Unavailable", "MiniTwit cannot reach its database; try again soon."
            )
        return await error_page(500, "Internal Server Error", "Something went wrong on our side.")

    return app


__all__ = ["create_api_app", "create_web_app"]
