"""One ASGI entry point for both surfaces, routed by the port a request arrived on.

Each worker process listens on the web port and the API port and runs both
Quart apps in one event loop, so they share one database pool. Requests to
the API port go to the API app; on the web port, ``/api/...`` goes to the API
app too (with ``root_path=/api``, so its routes and OpenAPI paths stay the
same) and everything else to the web UI.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from app import __version__
from app.config import Settings
from app.db import connection_name
from app.factory import create_api_app, create_web_app
from app.observability import logs, metrics
from app.observability.runtime import RuntimeSampler

Scope = dict[str, Any]
Receive = Any
Send = Any

API_PREFIX = "/api"


class PortDispatcher:
    def __init__(
        self, web: Quart, api: Quart, api_port: int, sampler: RuntimeSampler | None = None
    ) -> None:
        self.web = web
        self.api = api
        self.api_port = api_port
        self.sampler = sampler

    def route(self, scope: Scope) -> tuple[Quart, Scope]:
        server = scope.get("server")
        if server and server[1] == self.api_port:
            return self.api, scope
        path: str = scope.get("path", "")
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            root = scope.get("root_path", "") + API_PREFIX
            return self.api, {**scope, "root_path": root}
        return self.web, scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app, routed_scope = self.route(scope)
        await app(routed_scope, receive, send)  # type: ignore[arg-type]

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start both apps (and so the database) before serving; stop them after."""
        started: list[Quart] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for app in (self.web, self.api):
                        await app.startup()
                        started.append(app)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.sampler is not None:
                    self.sampler.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sampler is not None:
                    await self.sampler.stop()
                for app in reversed(started):
                    await app.shutdown()
                logs.flush_pending()  # not left to atexit, which a multiprocessing fork child skips
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_asgi_app(settings: Settings | None = None) -> PortDispatcher:
    """The factory the ASGI server calls in each worker process."""
    settings = settings or Settings.from_env()
    logs.configure(
        level=settings.log_level,
        version=__version__,
        environment=settings.environment,
        logstash_host=settings.logstash_host,
        logstash_port=settings.logstash_port,
        logstash_queue_size=settings.logstash_queue_size,
        logstash_report_seconds=settings.log_drop_report_seconds,
    )
    metrics.record_start(__version__, settings.revision)
    return PortDispatcher(
        create_web_app(settings),
        create_api_app(settings),
        settings.api_port,
        RuntimeSampler(connection_name(settings)),
    )
