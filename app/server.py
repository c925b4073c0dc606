"""Run both surfaces on uvicorn: two listening sockets, N worker processes.

uvicorn (with uvloop and httptools) was chosen over hypercorn by measurement:
about 2.4x the requests per second for the same Quart app here (see
docs/performance.md). The sockets are bound once in the parent and inherited
by the workers, so every worker accepts on both ports. SIGTERM stops
accepting, lets in-flight requests finish (up to MINITWIT_SHUTDOWN_TIMEOUT
seconds), closes the database pool, and the command exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.config import Settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CannotListen(OSError):
    """A port to serve on cannot be bound (in use, or not ours to take)."""


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, except that the parent stops listening on SIGTERM.

    The parent holds its own copy of the listening sockets (the workers inherit
    duplicates), and the kernel keeps accepting connections into the backlog
    while any copy is open: without this, a connection made after SIGTERM would
    be accepted and then never answered.
    """

    def _stop_listening(self) -> None:
        for sock in self.sockets:
            sock.close()

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
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
        log_config=None,  # the app's JSON logging setup applies to uvicorn's loggers too
    )


def prepare_metrics_dir() -> None:
    """Give the workers a clean directory for prometheus-client's multiprocess files.

    Set before any worker imports prometheus-client; emptied so that values of
    a previous run (or of killed workers) do not leak into this one.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        if path.exists():
            for stale in path.glob("*.db"):
                stale.unlink()
        path.mkdir(parents=True, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="minitwit-metrics-")


def cleanup_metrics_dir() -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if Path(path).name.startswith("minitwit-metrics-"):
        shutil.rmtree(path, ignore_errors=True)


def serve(settings: Settings) -> None:
    config = uvicorn_config(settings)
    sockets = [bind(settings.host, settings.web_port), bind(settings.host, settings.api_port)]
    prepare_metrics_dir()
    # Imported only now: prometheus-client must see PROMETHEUS_MULTIPROC_DIR first.
    from app import __version__
    from app.observability import logs

    # stdout carries one JSON object per line from the first line on (Filebeat reads it).
    logs.configure(level=settings.log_level, version=__version__, environment=settings.environment)
    logging.getLogger("minitwit.server").info(
        "MiniTwit web UI on http://%s:%d, simulator API on http://%s:%d (%d worker%s)",
        settings.host,
        settings.web_port,
        settings.host,
        settings.api_port,
        settings.workers,
        "s" if settings.workers > 1 else "",
        extra={"event.action": "server-started"},
    )
    try:
        if settings.workers > 1:
            Supervisor(config, sockets=sockets).run()
        else:
            _serve_in_this_process(config, sockets)
    finally:
        cleanup_metrics_dir()


def _serve_in_this_process(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    """One worker, in this process; return (so exit 0) after a graceful stop.

    After shutting down on a signal, uvicorn restores the handlers it found and
    raises the signal again; with the default handlers that kills the process
    (exit -15) after a clean shutdown. These handlers make the re-raise a no-op.
    """

    def already_handled(_signum: int, _frame: FrameType | None) -> None:
        return None

    previous = {sig: signal.signal(sig, already_handled) for sig in STOP_SIGNALS}
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
