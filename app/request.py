"""How both apps take a request in and send its response: Quart's classes, made cheaper.

Measured in one process, two API apps alternating on the simulator's mix
(the ``bench.inprocess`` way), on Python 3.11:

- Quart bounds the wait for a request body (``BODY_TIMEOUT``) and for
  sending the response (``RESPONSE_TIMEOUT``) with ``asyncio.wait_for``,
  which on 3.11 runs the awaited coroutine as a task of its own, with a
  waiter future and a timer: two tasks per action. ``asyncio.timeout`` gives
  the same bound inside the current task. With neither bound, the server's
  own CPU per request was 3.3% lower; these classes keep both bounds.
- Quart reads ``request.blueprints`` about six times per request, and its
  property runs a relative import on each read: 2.5 us per read through
  ``quart.request``, 1.1 us here (0.4 to 0.8% of a request's CPU).

Together: about 3% less of the server's own CPU per request (2.8 and 3.0% in
a scratch harness; 4.4 to 4.6% of the cheaper request after the reads became
one statement each: ``bench.inprocess --compare quart``, docs/performance.md).
"""

from __future__ import annotations

import asyncio
from typing import cast

from hypercorn.typing import ASGISendCallable
from quart.asgi import ASGIHTTPConnection, _handle_exception
from quart.helpers import _split_blueprint_path  # cached; Quart imports it on each read
from quart.wrappers import Request as QuartRequest
from quart.wrappers import Response
from werkzeug.exceptions import RequestTimeout


class Request(QuartRequest):
    @property
    def blueprints(self) -> list[str]:
        """The current blueprint's name, then its parents' (``"a.b"``: ``["a.b", "a"]``)."""
        blueprint = self.blueprint
        return [] if blueprint is None else _split_blueprint_path(blueprint)

    async def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> str | bytes:
        """Quart's, bounded by ``body_timeout`` (408) without a task of its own."""
        if parse_form_data:
            return await super().get_data(cache, as_text, parse_form_data)
        try:
            async with asyncio.timeout(self.body_timeout):
                data: bytes = await self.body
        except TimeoutError as error:
            raise RequestTimeout() from error
        if not cache:
            self.body.clear()
        return data.decode() if as_text else data


class HTTPConnection(ASGIHTTPConnection):
    async def handle_request(self, request: QuartRequest, send: ASGISendCallable) -> None:
        """Quart's, the response's send bounded without a task of its own: past the
        timeout (a client that stopped reading) the response is abandoned."""
        try:
            response = await self.app.handle_request(request)
        except Exception as error:
            response = await _handle_exception(self.app, error)
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = cast(float | None, response.timeout)
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        try:
            async with asyncio.timeout(timeout):
                await self._send_response(send, response)
        except TimeoutError:
            pass
