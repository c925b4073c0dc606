"""Run both surfaces on uvicorn: two listening sockets, N worker processes.

uvicorn (with uvloop and httptools) was chosen over hypercorn by measurement:
about 2.4x the requests per second for the same Quart app here (see
docs/performance.md). The sockets are bound once in the parent and inherited
by the workers, so every worker accepts on both ports. SIGTERM stops
accepting, lets in-flight requests finish (up to MINITWIT_SHUTDOWN_TIMEOUT
seconds), then closes the database pool.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.config import Settings


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        "app.asgi:create_asgi_app",
        factory=True,
        host=settings.host,
        port=settings.web_port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the app writes its own access events
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        timeout_keep_alive=5,
        server_header=False,
        log_level=settings.log_level.lower(),
    )


def serve(settings: Settings) -> None:
    config = uvicorn_config(settings)
    sockets = [bind(settings.host, settings.web_port), bind(settings.host, settings.api_port)]
    print(
        f"MiniTwit web UI on http://{settings.host}:{settings.web_port}, "
        f"simulator API on http://{settings.host}:{settings.api_port} "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''})",
        flush=True,
    )
    if settings.workers > 1:
        Multiprocess(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)
