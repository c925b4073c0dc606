"""A small, cheap HTTP/1.1 client for the load generator: one request per connection.

``minitwit simulate`` runs on the same machine as the server it measures more
often than not, so every microsecond of CPU the client spends is taken from
the server and shows up as server latency. httpx costs about half a
millisecond of CPU per request with a new connection each time (see
docs/performance.md); this client writes the request bytes prepared once and
parses the answer with ``httptools`` (llhttp, the parser uvicorn uses), on a
bare ``asyncio.Protocol``, for a fraction of that.

It does only what the simulator does: a new TCP (or TLS) connection per
request, ``Connection: close``, the whole request in one write, the answer
read to its end (``Content-Length``, chunked, or until the server closes). The
timeout is applied as the reference simulator's ``requests`` applies
``timeout=0.3``: at most that long to connect, then at most that long for the
answer after the request was sent.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

USER_AGENT = "minitwit-simulate/1.0"


class TransportError(Exception):
    """No HTTP answer: the connection failed or broke, or the answer was not HTTP."""


class RequestTimeout(TransportError):
    """No connection or no complete answer within the timeout."""


@dataclass(frozen=True)
class Target:
    """Where requests go: parsed once from a base URL like ``http://127.0.0.1:5001``."""

    scheme: str
    host: str
    port: int
    host_header: str
    base_path: str  # without a trailing slash; "" or "/api"

    @classmethod
    def parse(cls, base_url: str) -> Target:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"a base URL has no query or fragment: {base_url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in {base_url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.netloc, parts.path.rstrip("/"))

    def payload(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> bytes:
        """The request's bytes: ``path`` is relative to the base URL and already encoded."""
        lines = [f"{method} {self.base_path}{path} HTTP/1.1", f"Host: {self.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if "Connection" not in headers:
            lines.append("Connection: close")
        if "User-Agent" not in headers:
            lines.append(f"User-Agent: {USER_AGENT}")
        if body or method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes


class _Exchange(asyncio.Protocol):
    """One request and its response on one connection, then close."""

    def __init__(self, payload: bytes, answer: asyncio.Future[Response]) -> None:
        self.payload = payload
        self.answer = answer
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.delimited = False  # Content-Length or chunked: the end is known, not EOF

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"not an HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer.done():
            return
        if self.headers_done and not self.delimited and exc is None:
            self._finish()  # a body delimited by the server closing the connection
        else:
            reason = f": {exc}" if exc else ""
            self._fail(TransportError(f"the server closed the connection mid-response{reason}"))

    # httptools callbacks

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.parser.get_status_code() in (204, 304):
            self.delimited = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.answer.done():
            body = b"".join(self.chunks)
            self.answer.set_result(Response(self.parser.get_status_code(), body))
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Sends prepared requests to one ``Target``; each on its own connection."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.ssl: ssl.SSLContext | None = None
        if target.scheme == "https":
            self.ssl = ssl.create_default_context()
        self._address: tuple[str, int] | None = None

    async def _resolve(self) -> tuple[str, int]:
        """Resolve the host once, not per request (a load generator must not measure DNS)."""
        if self._address is None:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(
                    self.target.host, self.target.port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise TransportError(f"cannot resolve {self.target.host!r}: {exc}") from exc
            family_address = infos[0][4]
            self._address = (str(family_address[0]), int(family_address[1]))
        return self._address

    async def exchange(self, payload: bytes, timeout: float) -> Response:
        """Connect, send ``payload``, read the answer; ``RequestTimeout``/``TransportError``."""
        loop = asyncio.get_running_loop()
        host, port = await self._resolve()
        answer: asyncio.Future[Response] = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: _Exchange(payload, answer),
                    host,
                    port,
                    ssl=self.ssl,
                    server_hostname=self.target.host if self.ssl else None,
                )
        except TimeoutError:
            raise RequestTimeout(f"no connection within {timeout} s") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        try:
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise RequestTimeout(f"no complete response within {timeout} s") from None
        finally:
            if not answer.done():
                answer.cancel()
            if not transport.is_closing():
                transport.abort()
