"""A hello-world Quart app: the ceiling MiniTwit's API is compared with.

Every route answers at once, with no database, no authentication and no
middleware: ``POST`` anything gets the API's ``204``, ``GET`` anything a tiny
JSON object. So the same scenario, sent by the same client, costs here only
what the ASGI server and Quart cost, and the ratio of MiniTwit's throughput to
this one's says how close the app is to that ceiling.

Serve it the way ``minitwit serve`` serves MiniTwit (uvicorn, uvloop,
httptools, no access log, sockets bound in the parent, N worker processes)::

    .venv/bin/python -m bench.hello --port 5101 --workers 1

``bench.servers`` also runs it on hypercorn and granian (``bench.hello:app``).
"""

from __future__ import annotations

import argparse
import sys

from quart import Quart, Response, jsonify

app = Quart(__name__)


@app.post("/<path:_path>")
async def accept(_path: str) -> Response:
    return Response("", status=204)


@app.get("/<path:_path>")
async def hello(_path: str) -> Response:
    return jsonify({"hello": "world"})


def serve(host: str, port: int, workers: int) -> None:
    """uvicorn with the options ``app.server.uvicorn_config`` gives MiniTwit."""
    import uvicorn

    from app.server import Supervisor, bind

    config = uvicorn.Config(
        "bench.hello:app",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        timeout_keep_alive=5,
        server_header=False,
        log_level="warning",
    )
    sockets = [bind(host, port)]
    if workers > 1:
        Supervisor(config, sockets=sockets).run()
    else:
        uvicorn.Server(config).run(sockets=sockets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hello", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5101)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
