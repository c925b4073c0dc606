"""A stand-in for the DigitalOcean API and the droplets' /health, on loopback.

The deploy scripts (deploy/lib/do-api.sh and its callers) talk to it through
DO_API_URL with real curl and jq. It keeps the state that matters: which
droplet each reserved IP is assigned to, with DigitalOcean's rule that a
droplet holds at most one reserved IPv4 (assigning a second is a 422), and it
records every call. ``/health/<name>`` answers as the test sets it, standing
in for a droplet's app; ``/via/<reserved ip>/<path>`` is that path on whichever
droplet the reserved IP points at now (200 when its app is healthy, 503 when
not or when ``broken_routes`` holds the IP); ``/metadata/<droplet id>/...`` is
a droplet's metadata service.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "stub-token-not-a-secret"


@dataclass
class Droplet:
    id: int
    name: str
    private_ip: str
    tags: list[str]


@dataclass
class DoStub:
    droplets: dict[int, Droplet] = field(default_factory=dict)
    reserved_ips: dict[str, int | None] = field(default_factory=dict)
    health: dict[str, bool] = field(default_factory=dict)
    broken_routes: set[str] = field(default_factory=set)
    # (reserved IP, droplet id) assignments the API refuses with a 500, as an outage would
    refused_assignments: set[tuple[str, int]] = field(default_factory=set)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _action_id: int = 0

    def start(self) -> DoStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def holder(self, ip: str) -> int | None:
        with self._lock:
            return self.reserved_ips[ip]

    def mutations(self) -> list[tuple[str, str, Any]]:
        """The calls that changed something, in order."""
        with self._lock:
            return [call for call in self.calls if call[0] != "GET"]

    # --- the HTTP side -------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length)) if length else None
        segments = [s for s in path.split("/") if s]
        if segments[:1] == ["health"]:
            ok = self.health.get(segments[1], False)
            self._send(request, 200 if ok else 503, {"status": "ok" if ok else "unavailable"})
            return
        if segments[:1] == ["via"]:
            holder = self.reserved_ips.get(segments[1])
            name = self.droplets[holder].name if holder is not None else ""
            ok = self.health.get(name, False) and segments[1] not in self.broken_routes
            self._send(request, 200 if ok else 503, {"status": "ok" if ok else "unavailable"})
            return
        if segments[:1] == ["metadata"]:
            self._metadata(request, int(segments[1]), segments[2:])
            return
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(
                request, 401, {"id": "unauthorized", "message": "Unable to authenticate you"}
            )
            return
        with self._lock:
            self.calls.append((method, path, body))
            status, payload = self._api(method, segments, query, body)
        self._send(request, status, payload)

    def _metadata(self, request: BaseHTTPRequestHandler, droplet_id: int, rest: list[str]) -> None:
        droplet = self.droplets[droplet_id]
        answers = {
            "id": str(droplet.id),
            "interfaces/private/0/ipv4/address": droplet.private_ip,
        }
        text = answers.get("/".join(rest))
        request.send_response(200 if text is not None else 404)
        request.end_headers()
        request.wfile.write((text or "not found").encode())

    def _droplet_json(self, droplet: Droplet) -> dict[str, Any]:
        return {
            "id": droplet.id,
            "name": droplet.name,
            "tags": droplet.tags,
            "networks": {
                "v4": [
                    {"ip_address": f"203.0.113.{droplet.id % 250}", "type": "public"},
                    {"ip_address": droplet.private_ip, "type": "private"},
                ]
            },
        }

    def _api(
        self, method: str, seg: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if method == "GET" and seg == ["v2", "droplets"]:
            tag = query.get("tag_name", [None])[0]
            found = [d for d in self.droplets.values() if tag is None or tag in d.tags]
            return 200, {"droplets": [self._droplet_json(d) for d in found]}
        if method == "GET" and seg[:2] == ["v2", "droplets"] and len(seg) == 3:
            droplet = self.droplets.get(int(seg[2]))
            if droplet is None:
                return 404, {"id": "not_found", "message": "droplet not found"}
            return 200, {"droplet": self._droplet_json(droplet)}
        if seg[:2] != ["v2", "reserved_ips"] or len(seg) < 3 or seg[2] not in self.reserved_ips:
            return 404, {
                "id": "not_found",
                "message": "The resource you requested could not be found.",
            }
        ip = seg[2]
        if method == "GET" and len(seg) == 3:
            holder = self.reserved_ips[ip]
            droplet = self._droplet_json(self.droplets[holder]) if holder is not None else None
            return 200, {"reserved_ip": {"ip": ip, "droplet": droplet, "region": {"slug": "fra1"}}}
        if method == "GET" and len(seg) == 5 and seg[3] == "actions":
            return 200, {"action": {"id": int(seg[4]), "status": "completed"}}
        if method == "POST" and len(seg) == 4 and seg[3] == "actions":
            if body.get("type") == "unassign":
                self.reserved_ips[ip] = None
            elif body.get("type") == "assign":
                target = int(body["droplet_id"])
                if (ip, target) in self.refused_assignments:
                    return 500, {"id": "server_error", "message": "Server was unable to respond"}
                if target not in self.droplets:
                    return 404, {"id": "not_found", "message": "droplet not found"}
                others = [o for o, h in self.reserved_ips.items() if h == target and o != ip]
                if others:
                    return 422, {
                        "id": "unprocessable_entity",
                        "message": "Droplet already has a reserved IP assigned",
                    }
                self.reserved_ips[ip] = target
            else:
                return 422, {"id": "unprocessable_entity", "message": "unknown action"}
            self._action_id += 1
            return 201, {"action": {"id": self._action_id, "status": "in-progress"}}
        return 405, {"id": "method_not_allowed", "message": "no"}

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
