"""One logging setup: every line is one JSON object in Elastic Common Schema.

ecs-logging formats the records; this module adds what ECS alone does not
give us: the request id on every line written while a request is handled
(a context variable the middleware sets), a defensive scrub of anything that
looks like a secret, and an optional second output straight to Logstash over
TCP (python-logstash) behind a bounded queue, so a slow or dead Logstash costs
a request nothing: events that do not fit are dropped, counted in
``minitwit_log_events_dropped_total`` and reported once a minute
(``MINITWIT_LOG_DROP_REPORT_SECONDS``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import json
import logging
import operator
import os
import queue
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import ecs_logging
from ecs_logging import ECS_VERSION as _ECS_VERSION

# (From its module: a bare ``import logstash`` makes mypy find this repository's
# logstash/ folder of pipeline files instead of python-logstash.)
from logstash.handler_tcp import TCPLogstashHandler

from app.observability import metrics

SERVICE_NAME = "minitwit"

# The fields the app writes (ECS names). The Logstash pipeline, the index
# template and the Kibana searches are checked against this list by tests.
FIELDS: Mapping[str, str] = {
    "@timestamp": "date",
    "log.level": "keyword",
    "log.logger": "keyword",
    "message": "text",
    "ecs.version": "keyword",
    "service.name": "keyword",
    "service.version": "keyword",
    "service.environment": "keyword",
    "event.dataset": "keyword",
    "event.action": "keyword",
    "event.category": "keyword",
    "event.outcome": "keyword",
    "event.duration": "long",
    "http.request.id": "keyword",
    "http.request.method": "keyword",
    "http.response.status_code": "long",
    "http.route": "keyword",
    "url.path": "keyword",
    "client.ip": "ip",
    "user_agent.original": "keyword",
    "user.name": "keyword",
    "user.target.name": "keyword",
    "labels.app": "keyword",
    "error.type": "keyword",
    "error.message": "text",
    "error.stack_trace": "text",
    "process.pid": "long",
}

# Never written, whatever a caller passes in ``extra``: the scrub removes any
# field whose last name part is one of these.
SENSITIVE_NAMES = frozenset(
    {"password", "pwd", "pw_hash", "authorization", "cookie", "set-cookie", "secret_key"}
)

# Extras other libraries attach that are not ECS and carry nothing new.
NOISE = frozenset({"color_message"})

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "minitwit_request_id", default=None
)


# What every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    """Stamp every record with the current request id, and drop secret-looking extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "http.request.id"):
            setattr(record, "http.request.id", current)
        # Only the extras can carry a secret: checking just them keeps this
        # filter cheap on the per-request access event.
        for name in vars(record).keys() - _RECORD_ATTRIBUTES:
            if _must_drop(name):
                delattr(record, name)
        return True


@functools.lru_cache(maxsize=1024)
def _must_drop(name: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in SENSITIVE_NAMES or name in NOISE


class _MergeConflict(Exception):
    """A dotted extra collides with a field already set: the library's path decides."""


class _EncodableECSFormatter(ecs_logging.StdlibFormatter):
    """ecs-logging's ECS JSON, made cheap for the common record, and always encodable.

    ``StdlibFormatter.format_to_ecs`` builds each event generically (an
    extractor per possible field, sets, de-dotting and deep merges of one-key
    dicts): about 80 us per event here, two events per simulator action, a
    fifth of an action's CPU. For an event without an exception or stack
    (nearly all), ``fast_line`` writes the line from a layout made once per
    set of field names, encoding only the values; ``format_to_ecs`` (which the
    library documents as the method to override) builds the same dict
    directly for the rare one the layout refuses; anything unusual (an
    exception, a nested ``extra``, a field collision) still goes to the
    library. ``tests/test_log_format.py`` checks that all give the same JSON.

    A lone surrogate (a username sent as ``"\\ud800"`` in JSON) cannot be
    encoded: the stream write failed, the event was lost and a non-JSON
    traceback took its line. Such a character is written as its JSON escape.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._static: dict[str, Any] = {}
        for name, value in (self._extra or {}).items():
            _merge_path(self._static, tuple(name.split(".")), value)
        self._dotted_paths: dict[str, tuple[str, ...] | None] = {}
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads share the formatter
        self._templates: dict[frozenset[str], _LineTemplate | None] = {}
        # ecs_logging's json_dumps calls json.dumps four times per event with
        # keyword arguments, which builds a new encoder each time: one encoder.
        self._encode = json.JSONEncoder(
            sort_keys=True,
            separators=(",", ":"),
            default=_json_fallback,
            ensure_ascii=self.ensure_ascii,
        ).encode
        # Plain values as the encoder writes them (its C string escaping; floats through
        # the encoder itself for NaN and the infinities); any other type: generic path.
        self._encoders: dict[type, Callable[[Any], str]] = {
            str: (
                json.encoder.encode_basestring_ascii
                if self.ensure_ascii
                else json.encoder.encode_basestring
            ),
            int: int.__repr__,
            bool: lambda value: "true" if value else "false",
            float: self._encode,
        }

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info or record.stack_info):
            message = record.getMessage()
            record.message = message  # as the library leaves it
            text = self.fast_line(
                record.created,
                record.levelname,
                record.name,
                message,
                record.process,
                self._extras(record),
            )
            if text is not None:
                return text
        return self.line(self.format_to_ecs(record))

    def format_to_ecs(self, record: logging.LogRecord) -> dict[str, Any]:
        if record.exc_info or record.stack_info:
            return super().format_to_ecs(record)
        message = record.getMessage()
        record.message = message
        event = self._assemble(
            self._timestamp(record.created),
            record.levelname.lower(),
            record.name,
            message,
            record.process,
            self._extras(record),
        )
        return super().format_to_ecs(record) if event is None else event

    def _extras(self, record: logging.LogRecord) -> dict[str, Any]:
        """What the caller passed in ``extra`` (and filters added): all but LogRecord's own."""
        fields = record.__dict__
        return {name: fields[name] for name in fields.keys() - self._LOGRECORD_DICT}

    def fast_line(
        self,
        created: float,
        level_name: str,
        logger: str,
        message: str,
        pid: int | None,
        extra: Mapping[str, Any],
    ) -> str | None:
        """The line of an event without exception or stack, encoding only its values.

        The rest of the line depends only on which extra fields are set: it is
        compiled once per set of names (``_LineTemplate``). None where the
        generic path must decide (see ``_assemble``), or a value is not a plain
        str, int, float or bool.
        """
        present = {name: value for name, value in extra.items() if value is not None}
        key = frozenset(present)
        try:
            template = self._templates[key]
        except KeyError:
            template = self._compile(key)
            if len(self._templates) < MAX_TEMPLATES:  # names someone makes up as they go
                self._templates[key] = template
        if template is None or pid is None:
            return None
        present.update(
            zip(
                _BASE_KEYS,
                (self._timestamp(created), level_name.lower(), logger, message, pid),
                strict=True,
            )
        )
        return template.render(present, self._encoders)

    def _compile(self, names: frozenset[str]) -> _LineTemplate | None:
        """Lay the event out once with placeholders for values, as ``line`` would write it,
        leaving out any secret-looking field (as ``RequestContextFilter`` does for records)."""
        ordered = tuple(sorted(name for name in names if not _must_drop(name)))
        slots = [f"\x00{index}\x00" for index in range(_BASE_SLOTS + len(ordered))]
        timestamp, level, logger, message, pid = slots[:_BASE_SLOTS]
        event = self._assemble(
            timestamp,
            level,
            logger,
            message,
            pid,
            dict(zip(ordered, slots[_BASE_SLOTS:], strict=True)),
        )
        return None if event is None else _LineTemplate.of(self._dumps(event), ordered, len(slots))

    def _assemble(
        self,
        timestamp: str,
        level: str,
        logger: str,
        message: str,
        pid: int | str | None,
        extra: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """The ECS event of a record without exception or stack, from its parts.

        None where the library's generic path must decide: a nested or excluded
        extra, or one that collides with a field already set.
        """
        result: dict[str, Any] = {
            "@timestamp": timestamp,
            "ecs.version": _ECS_VERSION,
            "log": {"level": level, "logger": logger},
            "message": message,
        }
        if pid is not None:
            result["process"] = {"pid": pid}
        paths = self._dotted_paths
        try:
            for name, value in extra.items():
                if value is None:
                    continue
                path = paths[name] if name in paths else self._path(name)
                if path is None or (type(value) not in _PLAIN and isinstance(value, Mapping)):
                    return None
                node = _parent(result, path)  # the common case: a scalar at a new leaf
                if path[-1] in node:
                    raise _MergeConflict(path[-1])
                node[path[-1]] = value
            for group, values in self._static.items():
                _merge_path(result, (group,), values)
        except _MergeConflict:
            return None
        return result

    def _timestamp(self, created: float) -> str:
        """The library's ``_record_timestamp``, formatting each second only once."""
        second = self._second
        if second[0] != int(created):
            text = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(created))
            second = self._second = (int(created), text)
        return f"{second[1]}.{int((created - int(created)) * 1000):03d}Z"

    def _path(self, name: str) -> tuple[str, ...] | None:
        """``name`` split at its dots; None where the library must decide (excluded, APM)."""
        try:
            return self._dotted_paths[name]
        except KeyError:
            path: tuple[str, ...] | None = tuple(name.split("."))
            if self._is_field_excluded(name) or name.startswith("elasticapm_"):
                path = None
            self._dotted_paths[name] = path
            return path

    def line(self, event: dict[str, Any]) -> str:
        """The event as one line of JSON (without the newline)."""
        return _encodable(self._dumps(event))

    def _dumps(self, event: dict[str, Any]) -> str:
        """ecs_logging's ``json_dumps``: @timestamp, log.level and message first, then sorted."""
        first = []
        if "@timestamp" in event:
            first.append(("@timestamp", event.pop("@timestamp")))
        log = event.get("log")
        if isinstance(log, dict) and "level" in log:
            first.append(("log.level", log.pop("level")))
            if not log:
                del event["log"]
        elif "log.level" in event:
            first.append(("log.level", event.pop("log.level")))
        if "message" in event:
            first.append(("message", event.pop("message")))
        if not first:
            return self._encode(event)
        head = ",".join(f'"{key}":{self._encode(value)}' for key, value in first)
        return "{" + head + ("," + self._encode(event)[1:] if event else "}")


_PLAIN = frozenset({str, int, float, bool})
# Every event's own parts, in slot order (then the extras, by name); NUL keeps them
# apart from any field name.
_BASE_KEYS = ("\x00timestamp", "\x00level", "\x00logger", "\x00message", "\x00pid")
_BASE_SLOTS = len(_BASE_KEYS)
_SLOT = re.compile(r'"\\u0000(\d+)\\u0000"')
MAX_TEMPLATES = 256


class _LineTemplate:
    """One event shape's JSON line as a %-format: literal text with a ``%s`` per value.

    ``sources`` says which value goes in each ``%s``, in the order they appear
    on the line: a base part of every event (``_BASE_KEYS``) or an extra by name.
    """

    def __init__(self, names: tuple[str, ...], chunks: list[str], order: list[int]) -> None:
        self.names = names
        keys = _BASE_KEYS + names
        self.sources = tuple(keys[slot] for slot in order)
        self.chunks = chunks
        self.layout = "%s".join(chunk.replace("%", "%%") for chunk in chunks)

    @classmethod
    def of(cls, skeleton: str, names: tuple[str, ...], slots: int) -> _LineTemplate | None:
        pieces = _SLOT.split(skeleton)  # text, slot, text, slot, ..., text
        order = [int(index) for index in pieces[1::2]]
        if sorted(order) != list(range(slots)):
            return None  # a placeholder lost or repeated: leave this shape to the generic path
        return cls(names, pieces[0::2], order)

    def render(
        self, values: Mapping[str, Any], encoders: Mapping[type, Callable[[Any], str]]
    ) -> str | None:
        """The line, or None if a value is not of a type in ``encoders``."""
        return _fill(self.layout, map(values.__getitem__, self.sources), encoders)


def _fill(
    layout: str, values: Iterable[Any], encoders: Mapping[type, Callable[[Any], str]]
) -> str | None:
    """``layout`` with each value, in order, encoded by its type's encoder;
    None if a value is not of a type in ``encoders``."""
    try:
        parts = tuple([encoders[type(value)](value) for value in values])
    except KeyError:
        return None
    return _encodable(layout % parts)


def _encodable(text: str) -> str:
    """A lone surrogate cannot be written as UTF-8: it is written as its JSON escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _json_fallback(value: Any) -> Any:
    """What ecs_logging does with a value json cannot write (structlog's convention, else repr)."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def _parent(into: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The dict that holds ``path``'s last part, made as needed; a value in the way conflicts."""
    node = into
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif type(child) is not dict:
            raise _MergeConflict(part)
        node = child
    return node


def _merge_path(into: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``into[a][b][c] = value`` for path (a, b, c), merging dicts, never replacing a value."""
    node = _parent(into, path)
    last = path[-1]
    if last not in node:
        node[last] = dict(value) if type(value) is dict else value
    elif type(node[last]) is dict and type(value) is dict:
        for key, inner in value.items():
            _merge_path(node[last], (key,), inner)
    else:
        raise _MergeConflict(last)


class _BytesECSFormatter(_EncodableECSFormatter):
    """python-logstash's TCP handler wants bytes from its formatter."""

    def format(self, record: logging.LogRecord) -> bytes:  # type: ignore[override]
        return super().format(record).encode("utf-8")


class DroppingQueueHandler(logging.Handler):
    """Put records on a bounded queue without ever blocking; count what does not fit.

    Drops are counted in the metric at once and written to stdout as one
    warning per ``report_every`` seconds (by ``LogstashShipper``'s reporter
    thread), never one line per dropped event.
    """

    def __init__(self, events: queue.Queue[logging.LogRecord | bytes], report_every: float = 60.0):
        super().__init__()
        self.events = events
        self.report_every = report_every
        self._dropped_since_report = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        # Render now: the args may change after the request moves on.
        record.msg = record.getMessage()
        record.args = None
        self.offer(record)

    def offer(self, event: logging.LogRecord | bytes) -> None:
        """Queue a record, or a line already formatted for Logstash; count it if full."""
        try:
            self.events.put_nowait(event)
        except queue.Full:
            metrics.LOG_EVENTS_DROPPED.inc()
            with self._lock:
                self._dropped_since_report += 1

    def report(self) -> int:
        """Write one warning for the drops since the last report, if any; return their number."""
        with self._lock:
            dropped, self._dropped_since_report = self._dropped_since_report, 0
        if dropped:
            # Reported on stdout only: the Logstash path is the one that is full.
            logging.getLogger(STDOUT_ONLY_LOGGER).warning(
                "dropped %d log events for Logstash in the last %.0f s (queue full)",
                dropped,
                self.report_every,
                extra={"event.action": "log-events-dropped"},
            )
        return dropped


# The shipper's own reports go to stdout only (by logger name: a marker in
# ``extra`` would have been written into the JSON as a field nobody declared).
STDOUT_ONLY_LOGGER = "minitwit.logging"


class _NotForLogstash(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != STDOUT_ONLY_LOGGER


# How long the shipper waits before trying a record again when Logstash cannot
# be reached (python-logstash's handler adds its own backoff, up to 30 s).
RETRY_SECONDS = 0.5
# The kernel's send buffer for the Logstash socket. Left to autotuning it grows
# to megabytes that a stalled Logstash silently swallows (and that are lost on
# reconnect); the bounded queue is the buffer, where what is lost is counted.
SEND_BUFFER_BYTES = 64 * 1024


class _LogstashTCPHandler(TCPLogstashHandler):
    def makeSocket(self, timeout: float = 1) -> socket.socket:
        sock: socket.socket = super().makeSocket(timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        return sock


class LogstashShipper:
    """A background thread draining the queue into python-logstash's TCP handler.

    A record leaves the queue only once it was written to a connected socket:
    while Logstash is down the thread keeps the record and retries, so the
    queue fills up and what no longer fits is dropped and counted (instead of
    python-logstash discarding records silently while it has no connection).
    The socket has a 1 s timeout (then it reconnects) and a small send buffer,
    so a Logstash that accepts but never reads stalls this thread, never a
    request, and the queue, not the kernel, holds what waits.
    """

    def __init__(
        self,
        host: str,
        port: int,
        formatter: logging.Formatter,
        capacity: int,
        report_every: float = 60.0,
    ) -> None:
        self.events: queue.Queue[logging.LogRecord | bytes] = queue.Queue(maxsize=capacity)
        self.tcp = _LogstashTCPHandler(host, port, version=1)
        self.tcp.setFormatter(formatter)
        self.handler = DroppingQueueHandler(self.events, report_every)
        self.handler.addFilter(_NotForLogstash())
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._drain, name="minitwit-logstash", daemon=True),
            threading.Thread(target=self._report, name="minitwit-log-drops", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self.handler.report()
        self.tcp.close()

    def _drain(self) -> None:
        while not self._stopping.is_set():
            try:
                record = self.events.get(timeout=RETRY_SECONDS)
            except queue.Empty:
                continue
            while not self._ship(record):
                if self._stopping.wait(RETRY_SECONDS):
                    return

    def _ship(self, event: logging.LogRecord | bytes) -> bool:
        """Send one event; True once it was written to a connected socket (or cannot be)."""
        if isinstance(event, bytes):
            line = event
        else:
            try:
                line = self.tcp.makePickle(event)
            except Exception:
                self.tcp.handleError(event)  # a record that cannot be formatted is not retried
                return True
        self.tcp.send(line)  # connects if needed; on failure closes and forgets the socket
        return self.tcp.sock is not None

    def _report(self) -> None:
        while not self._stopping.wait(self.handler.report_every):
            self.handler.report()


_shipper: LogstashShipper | None = None


class EventWriter:
    """Writes an event the way ``logger.log(level, message, extra=fields)`` would,
    to the outputs ``configure`` installed, without making a LogRecord.

    For the events of every request (the access event, the domain events):
    inside a busy server the logging machinery (the record, the filters, the
    handler lock, the formatter's generic entry) cost about 110 us per event,
    a tenth of a simulator action, most of the measured cost of observability.
    Events written on the event loop are kept until the end of its current
    turn and then formatted and written together, one ``write`` for all of
    them. A line thus comes out microseconds after its event, possibly after
    a line written through ``logging`` meanwhile (each carries its own
    @timestamp); what is pending at exit is written by an ``atexit`` hook.
    The line is the one ``logging`` would write (``tests/test_log_format.py``).
    """

    def __init__(
        self,
        stdout: logging.StreamHandler[Any],
        formatter: _EncodableECSFormatter,
        shipper: LogstashShipper | None,
    ) -> None:
        self.stdout = stdout
        self.formatter = formatter
        self.shipper = shipper
        self._handlers = [stdout] if shipper is None else [stdout, shipper.handler]
        self._pending: list[_Event] = []
        self._flush_scheduled_on: asyncio.AbstractEventLoop | None = None

    def write(
        self, logger: logging.Logger, level: int, message: str, fields: dict[str, Any]
    ) -> bool:
        """Take the event; False (nothing taken) where another handler was added since
        (pytest's, say): only ``logging`` can write to that."""
        if not self._reaches_only_ours(logger, level):
            return False
        if "http.request.id" not in fields:
            current = request_id.get()
            if current is not None:
                fields = {**fields, "http.request.id": current}
        return self._take((time.time(), level, logger, message, fields))

    def write_kind(self, kind: EventKind, level: int, message: str, values: Values) -> bool:
        """``write`` for an event of a prepared kind: its values, not a dict of fields."""
        if not self._reaches_only_ours(kind.logger, level):
            return False
        if not kind.carries_request_id and request_id.get() is not None:
            return self.write(kind.logger, level, message, kind.fields(values))
        return self._take((time.time(), level, kind, message, values))

    def _take(self, event: _Event) -> bool:
        """Keep the event until the end of the event loop's turn; off the loop, write it now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop (a thread, a script): at once
            self._write([event])
            return True
        if self._flush_scheduled_on is not loop:  # the first event since the last flush,
            # or one on a new loop while the one that scheduled the flush has stopped
            loop.call_soon(self.flush)
            self._flush_scheduled_on = loop
        self._pending.append(event)
        return True

    def flush(self) -> None:
        """Write the events taken on the event loop since the last flush, in order."""
        self._flush_scheduled_on = None
        events, self._pending = self._pending, []
        if events:
            self._write(events)

    def _write(self, events: list[_Event]) -> None:
        lines: list[str] = []
        pid = _pid
        for created, level, source, message, payload in events:
            level_name = logging.getLevelName(level)
            if type(source) is EventKind:
                values = cast(Values, payload)
                line = source.line(self.formatter, created, level_name, message, pid, values)
                logger = source.logger
            else:
                logger = cast(logging.Logger, source)
                line = self.formatter.fast_line(
                    created, level_name, logger.name, message, pid, cast(dict[str, Any], payload)
                )
            if line is None:  # a shape only the library can lay out: through logging, in order
                self._emit(lines)
                lines = []
                fields = source.fields(values) if type(source) is EventKind else payload
                logger.log(level, message, extra=cast(dict[str, Any], fields))
            else:
                lines.append(line)
        self._emit(lines)

    def _emit(self, lines: list[str]) -> None:
        if not lines:
            return
        stream = self.stdout.stream
        with self.stdout.lock:  # type: ignore[union-attr] # the handler's, made with it
            try:
                stream.write("\n".join(lines) + "\n")
                stream.flush()
            except Exception:
                traceback.print_exc(file=sys.stderr)  # as logging reports a failed write
        if self.shipper is not None:
            for line in lines:
                self.shipper.handler.offer(line.encode("utf-8") + b"\n")

    def _reaches_only_ours(self, logger: logging.Logger, level: int) -> bool:
        """Whether ``logger.log`` would reach exactly the handlers ``configure`` installed,
        unfiltered: nothing added or changed on the way to the root since."""
        if logger.name == STDOUT_ONLY_LOGGER:
            return False
        if logging.root.handlers != self._handlers or logger.filters or logger.disabled:
            return False
        for handler in self._handlers:
            if level < handler.level:
                return False
        node: logging.Logger | None = logger
        while node is not None and node is not logging.root:
            if node.handlers or not node.propagate:
                return False
            node = node.parent
        return True


# created, level, logger, message, fields; or created, level, kind, message, values
_Event = (
    tuple[float, int, logging.Logger, str, dict[str, Any]]
    | tuple[float, int, "EventKind", str, "Values"]
)
Values = tuple[Any, ...]


def _remember_pid() -> None:
    global _pid
    _pid = os.getpid()


# The process id of every line: a system call each time otherwise.
_pid = os.getpid()
os.register_at_fork(after_in_child=_remember_pid)


def flush_pending() -> None:
    """Write the events kept for the next flush now: at exit, and when a worker's lifespan ends."""
    if _event_writer is not None:
        _event_writer.flush()


atexit.register(flush_pending)


_event_writer: EventWriter | None = None


def write_event(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """``logger.log(level, message, extra=fields)``, cheaper for a flat event (see EventWriter)."""
    if not logger.isEnabledFor(level):
        return
    writer = _event_writer
    if writer is None or not writer.write(logger, level, message, fields):
        logger.log(level, message, extra=fields)


def ecs_formatter(
    version: str,
    environment: str,
    formatter_class: type[_EncodableECSFormatter] = _EncodableECSFormatter,
) -> _EncodableECSFormatter:
    return formatter_class(
        extra={
            "service.name": SERVICE_NAME,
            "service.version": version,
            "service.environment": environment,
        },
        exclude_fields=["log.origin", "log.original", "process.thread", "process.name"],
        ensure_ascii=False,
    )


def configure(
    *,
    level: str,
    version: str,
    environment: str,
    logstash_host: str | None = None,
    logstash_port: int = 5000,
    logstash_queue_size: int = 10_000,
    logstash_report_seconds: float = 60.0,
    stream: Any = None,
) -> None:
    """Install the one root handler (stdout, JSON) and, if configured, the Logstash shipper."""
    global _shipper, _event_writer
    if _event_writer is not None:
        _event_writer.flush()
    _event_writer = None
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if _shipper is not None:
        _shipper.stop()
        _shipper = None

    # What no event carries (log.origin, process.thread and process.name are
    # excluded from the ECS output) is not collected either: the logging HOWTO's
    # "Optimization" settings, saving a stack walk and two lookups per record.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False

    stdout = logging.StreamHandler(stream or sys.stdout)
    stdout_formatter = ecs_formatter(version, environment)
    stdout.setFormatter(stdout_formatter)
    stdout.addFilter(RequestContextFilter())
    root.addHandler(stdout)
    root.setLevel(level)

    if logstash_host:
        formatter = ecs_formatter(version, environment, _BytesECSFormatter)
        _shipper = LogstashShipper(
            logstash_host, logstash_port, formatter, logstash_queue_size, logstash_report_seconds
        )
        _shipper.handler.addFilter(RequestContextFilter())
        root.addHandler(_shipper.handler)
        _shipper.start()
    _event_writer = EventWriter(stdout, stdout_formatter, _shipper)

    # uvicorn's own loggers go through the same JSON handler, except its access
    # log: the middleware writes the one access event per request.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False


class EventKind:
    """An event written on every request with the same fixed fields (one surface's
    access event), laid out once per set of its varying fields that are present.

    Each event then encodes only its varying values: against ``write_event``,
    no dict of fields to build, sort out or look up, and a third fewer values
    to encode. The line is the one ``logger.log(level, message, extra=fields)``
    writes (``tests/test_log_format.py``).
    """

    def __init__(
        self, logger: logging.Logger, fixed: Mapping[str, Any], varying: tuple[str, ...]
    ) -> None:
        if set(fixed) & set(varying):
            raise ValueError(f"fields both fixed and varying: {set(fixed) & set(varying)}")
        self.logger = logger
        self.fixed = dict(fixed)
        self.varying = varying
        self.carries_request_id = "http.request.id" in {*fixed, *varying}
        self._nones = (None,) * len(varying)
        self._formatter: _EncodableECSFormatter | None = None
        self._layouts: dict[tuple[bool, ...], _KindLayout | None] = {}

    def write(self, level: int, message: str, values: Values) -> None:
        """``write_event(logger, level, message, fields)`` where the varying fields
        have ``values``, in the order of ``varying``."""
        if not self.logger.isEnabledFor(level):
            return
        writer = _event_writer
        if writer is None or not writer.write_kind(self, level, message, values):
            self.logger.log(level, message, extra=self.fields(values))

    def fields(self, values: Values) -> dict[str, Any]:
        return {**self.fixed, **dict(zip(self.varying, values, strict=True))}

    def line(
        self,
        formatter: _EncodableECSFormatter,
        created: float,
        level_name: str,
        message: str,
        pid: int,
        values: Values,
    ) -> str | None:
        """The event's line, or None where the generic path must write it."""
        if formatter is not self._formatter:  # configured again: other static fields
            self._formatter, self._layouts = formatter, {}
        absent = tuple(map(operator.is_, values, self._nones))
        try:
            layout = self._layouts[absent]
        except KeyError:
            layout = self._layouts[absent] = self._compile(formatter, absent)
        if layout is None:
            return None
        vector = (formatter._timestamp(created), level_name.lower(), message, pid, *values)
        return layout.render(vector, formatter._encoders)

    def _compile(
        self, formatter: _EncodableECSFormatter, absent: tuple[bool, ...]
    ) -> _KindLayout | None:
        """The shape's line template with the fixed values (and the logger) written in."""
        present = [name for name, value in self.fixed.items() if value is not None]
        present += [name for name, gone in zip(self.varying, absent, strict=True) if not gone]
        template = formatter._compile(frozenset(present))
        if template is None:
            return None
        vector_index = {name: 4 + index for index, name in enumerate(self.varying)}
        vector_index.update({"\x00timestamp": 0, "\x00level": 1, "\x00message": 2, "\x00pid": 3})
        known = {**self.fixed, "\x00logger": self.logger.name}
        text = [template.chunks[0].replace("%", "%%")]
        picks: list[int] = []
        for source, chunk in zip(template.sources, template.chunks[1:], strict=True):
            if source in known:
                value = known[source]
                encode = formatter._encoders.get(type(value))
                if encode is None:
                    return None
                text.append(encode(value).replace("%", "%%"))
            else:
                picks.append(vector_index[source])
                text.append("%s")
            text.append(chunk.replace("%", "%%"))
        return _KindLayout("".join(text), tuple(picks))


class _KindLayout:
    """An event kind's line as a %-format, and which values fill it, in line order."""

    def __init__(self, layout: str, picks: tuple[int, ...]) -> None:
        self.layout = layout
        self.picks = picks

    def render(self, vector: Values, encoders: Mapping[type, Callable[[Any], str]]) -> str | None:
        return _fill(self.layout, map(vector.__getitem__, self.picks), encoders)
