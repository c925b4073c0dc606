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

The API goes further (``APIHTTPConnection``): no task of its own for a request
at all, because nothing there is to be cancelled when the client leaves.
"""

from __future__ import annotations

import asyncio
from typing import cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart.asgi import ASGIHTTPConnection, _handle_exception
from quart.helpers import _split_blueprint_path  # cached; Quart imports it on each read
from quart.wrappers import Request as QuartRequest
from quart.wrappers import Response
from quart.wrappers.request import Body as QuartBody
from werkzeug.exceptions import RequestTimeout


class Body(QuartBody):
    def give_up(self, error: Exception) -> None:
        """No more of the body will be received: every read raises ``error`` (as Quart's
        reads raise a 413 once a body grew too large)."""
        self._must_raise = error
        self.set_complete()

    @property
    def refused(self) -> bool:
        """Whether reads raise instead (a body too large, or given up)."""
        return self._must_raise is not None

    @property
    def received(self) -> bool:
        """Whether nothing more will come: a read answers (or raises) at once."""
        return self._complete.is_set()


class Request(QuartRequest):
    body_class = Body
    body: Body

    @property
    def blueprints(self) -> list[str]:
        """The current blueprint's name, then its parents' (``"a.b"``: ``["a.b", "a"]``)."""
        blueprint = self.blueprint
        return [] if blueprint is None else _split_blueprint_path(blueprint)

    async def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> str | bytes:
        """Quart's, bounded by ``body_timeout`` (408) without a task of its own; a body
        already received (always, on the API) needs no bound."""
        if parse_form_data:
            return await super().get_data(cache, as_text, parse_form_data)
        if self.body.received:
            data: bytes = await self.body
        else:
            try:
                async with asyncio.timeout(self.body_timeout):
                    data = await self.body
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


class APIHTTPConnection(HTTPConnection):
    """The API's: the body received, then the request handled, in the server's own task.

    Quart runs every request as two tasks, one receiving (the body, then waiting
    for the client to disconnect) and one handling, and cancels whichever still
    runs when the other ends. For the API that cancellation was never wanted: a
    registration cancelled half way had been counted in ``latest`` but not made,
    and every later action of that user got a 404, so each action ran in a
    third task shielded from it. Here nothing cancels a request once its body
    has arrived, the simulator's actions included: a client that has left is
    noticed by nobody, the server drops the answer it can no longer deliver,
    and the access event says what the server did (its status and full time),
    not 499. A client that leaves mid-body still ends the request before it
    starts, with nothing done.
    """

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        request = cast(Request, self._create_request_from_scope(send))
        if await self._receive_body(request, receive):
            await self.handle_request(request, send)

    @staticmethod
    async def _receive_body(request: Request, receive: ASGIReceiveCallable) -> bool:
        """Quart's ``handle_messages`` until the body is complete (or refused: 413);
        False when the client left first. Past ``body_timeout`` the handler's read
        raises the 408 it would have raised waiting itself."""
        body = request.body
        try:
            async with asyncio.timeout(request.body_timeout):
                while not body.refused:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return False
                    if message["type"] == "http.request":
                        body.append(message.get("body", b""))
                        if not message.get("more_body", False):
                            body.set_complete()
                            return True
        except TimeoutError:
            body.give_up(RequestTimeout())
        return True
