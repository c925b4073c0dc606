"""The container's health check: exit 0 when both ports answer ``GET /health`` with 200.

The image runs it as its ``HEALTHCHECK`` (see the Dockerfile). A 503 from
/health means this replica cannot reach the database; a refused connection
means the server is not (or no longer) listening. Either makes the container
unhealthy, and the one line printed says which port and why: ``docker
inspect`` shows it under State.Health.

``--live`` asks only whether the server answers: a 503 counts as alive. The
Swarm stack uses it, because Swarm replaces an unhealthy task: with the
readiness check, a database away for half a minute restarted every replica
on both droplets, though each recovers by itself when the database returns.
HAProxy still routes on the 200.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

PORTS = (("MINITWIT_WEB_PORT", "5000"), ("MINITWIT_API_PORT", "5001"))
# Two ports, one after the other, within the HEALTHCHECK --timeout (5 s): the reason is
# printed, not cut off.
TIMEOUT = 2.0


def check(url: str, live: bool = False) -> str | None:
    """None when ``url`` answers 200 (or, ``live``, 503: up, without its database),
    else why not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 (http on loopback)
            response.read()
    except urllib.error.HTTPError as exc:
        if live and exc.code == 503:
            return None
        return f"{url}: HTTP {exc.code} {exc.read()[:200].decode(errors='replace')}"
    except OSError as exc:  # refused, reset, timed out
        return f"{url}: {getattr(exc, 'reason', exc)}"
    return None


def main() -> int:
    live = "--live" in sys.argv[1:]
    problems = [
        problem
        for name, default in PORTS
        if (problem := check(f"http://127.0.0.1:{os.environ.get(name) or default}/health", live))
    ]
    print("; ".join(problems) or "healthy")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
