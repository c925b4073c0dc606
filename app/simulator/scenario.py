"""The scenario format the simulator replays: one action per line, tab-separated.

Columns (UTF-8, no quoting, no escaping)::

    id  delay  timestamp_ms  command  username  args...

    register  email, ..., password   (the password is the LAST column)
    tweet     text                   (everything after column 5, see below)
    follow    other username
    unfollow  other username

How this module reads a line, and why:

- Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``: what Python's ``csv``
  module (which the reference simulator uses) treats as line ends. Other
  Unicode line breaks (U+2028, U+0085, form feed, ...) are ordinary text
  here, so ``str.splitlines`` is never used: it would cut messages apart.
- A register's password is the last column and its email the sixth, exactly
  as the reference simulator reads them (``line[5]`` and ``line[-1]``), so a
  register line with extra columns in between still parses; the extras are
  ignored. A register line needs at least seven columns: with six, the
  reference would silently use the email as the password.
- A tweet's text is every column after the fifth, joined again with tabs. A
  tab is legal message content, and this is the only reading that loses
  nothing, so what the writer writes comes back unchanged. (The reference
  simulator reads only ``line[5]`` and would send a tabbed text cut at its
  first tab: that is why ``generate`` never puts a tab in a tweet, so its
  files mean the same to both.)
- follow/unfollow take exactly six columns: a username cannot contain a tab in
  this format, so a seventh column means a broken line, not a name.
- Integers are plain ASCII digits (``int()`` would also take ``"1_000"``,
  ``" 7 "`` or Arabic-Indic digits, which no tool writes on purpose).
- Blank lines carry no action and are skipped; a UTF-8 byte order mark at the
  very start is ignored (editors add one).
- Anything else wrong gives a ``ScenarioError`` naming the line number and
  what is wrong with it, instead of the reference's "print a traceback and
  go on", because a scenario that silently loses actions tests nothing.

The writer refuses what it cannot write so that it reads back the same: a
line break in any field, a tab in any field but a tweet's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BYTE_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_INTEGER = re.compile(r"-?[0-9]+")
_BOM = "\ufeff"


class Command(StrEnum):
    REGISTER = "register"
    TWEET = "tweet"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"


class ScenarioError(ValueError):
    """A malformed scenario line (or an action the writer cannot represent)."""

    def __init__(
        self, reason: str, line_number: int | None = None, line: str | None = None
    ) -> None:
        self.reason = reason
        self.line_number = line_number
        self.line = line
        where = f"line {line_number}: " if line_number is not None else ""
        shown = ""
        if line is not None:
            shown = line if len(line) <= 120 else line[:117] + "..."
            shown = f" in {shown!r}"
        super().__init__(f"{where}{reason}{shown}")


@dataclass(frozen=True, slots=True)
class Action:
    """One scenario action. Which optional fields are set depends on ``command``.

    ``register`` has ``email`` and ``password``; ``tweet`` has ``text``;
    ``follow`` and ``unfollow`` have ``other`` (the user followed or
    unfollowed). The constructors below build each kind; ``__post_init__``
    refuses a mix, so code downstream can rely on the fields it needs.
    """

    id: int
    delay: int
    timestamp_ms: int
    command: Command
    username: str
    email: str | None = None
    password: str | None = None
    text: str | None = None
    other: str | None = None

    def __post_init__(self) -> None:
        # Accept the plain string too ("tweet"), but store the enum, so ``is`` works.
        object.__setattr__(self, "command", Command(self.command))
        wanted = {
            Command.REGISTER: ("email", "password"),
            Command.TWEET: ("text",),
            Command.FOLLOW: ("other",),
            Command.UNFOLLOW: ("other",),
        }[self.command]
        for name in ("email", "password", "text", "other"):
            present = getattr(self, name) is not None
            if present != (name in wanted):
                need = "needs" if name in wanted else "must not have"
                raise ValueError(f"a {self.command} action {need} {name!r}")

    @classmethod
    def register(
        cls, id: int, username: str, email: str, password: str, delay: int = 0, ts: int = 0
    ) -> Action:
        return cls(id, delay, ts, Command.REGISTER, username, email=email, password=password)

    @classmethod
    def tweet(cls, id: int, username: str, text: str, delay: int = 0, ts: int = 0) -> Action:
        return cls(id, delay, ts, Command.TWEET, username, text=text)

    @classmethod
    def follow(cls, id: int, username: str, other: str, delay: int = 0, ts: int = 0) -> Action:
        return cls(id, delay, ts, Command.FOLLOW, username, other=other)

    @classmethod
    def unfollow(cls, id: int, username: str, other: str, delay: int = 0, ts: int = 0) -> Action:
        return cls(id, delay, ts, Command.UNFOLLOW, username, other=other)

    def args(self) -> tuple[str, ...]:
        """The command's own columns (6 onwards), in file order."""
        if self.command is Command.REGISTER:
            assert self.email is not None
            assert self.password is not None
            return (self.email, self.password)
        if self.command is Command.TWEET:
            assert self.text is not None
            return (self.text,)
        assert self.other is not None
        return (self.other,)


def _integer(value: str, column: str, line_number: int, line: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise ScenarioError(f"{column} must be an integer, got {value!r}", line_number, line)
    return int(value)


def parse_line(line: str, line_number: int = 1) -> Action:
    """One line (without its line break) as an ``Action``; ``ScenarioError`` if malformed."""
    columns = line.split("\t")
    if len(columns) < 6:
        raise ScenarioError(
            f"expected at least 6 tab-separated columns, found {len(columns)}", line_number, line
        )
    action_id = _integer(columns[0], "the action id (column 1)", line_number, line)
    delay = _integer(columns[1], "the delay (column 2)", line_number, line)
    timestamp = _integer(columns[2], "the timestamp (column 3)", line_number, line)
    if delay < 0:
        raise ScenarioError(f"the delay must not be negative, got {delay}", line_number, line)
    try:
        command = Command(columns[3])
    except ValueError:
        known = ", ".join(c.value for c in Command)
        raise ScenarioError(
            f"unknown command {columns[3]!r} (column 4; known: {known})", line_number, line
        ) from None
    username = columns[4]
    if not username:
        raise ScenarioError("the username (column 5) is empty", line_number, line)
    if command is Command.REGISTER:
        if len(columns) < 7:
            raise ScenarioError(
                "a register needs an email (column 6) and a password (the last column)",
                line_number,
                line,
            )
        return Action.register(action_id, username, columns[5], columns[-1], delay, timestamp)
    if command is Command.TWEET:
        return Action.tweet(action_id, username, "\t".join(columns[5:]), delay, timestamp)
    if len(columns) != 6:
        raise ScenarioError(
            f"a {command} takes exactly 6 columns (the last is the other username), "
            f"found {len(columns)}",
            line_number,
            line,
        )
    if not columns[5]:
        raise ScenarioError(f"the user to {command} (column 6) is empty", line_number, line)
    if command is Command.FOLLOW:
        return Action.follow(action_id, username, columns[5], delay, timestamp)
    return Action.unfollow(action_id, username, columns[5], delay, timestamp)


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":  # the break after the last line ends it; it adds no line
        lines.pop()
    for number, line in enumerate(lines, start=1):
        yield number, (line.removeprefix(_BOM) if number == 1 else line)


def parse_text(text: str) -> list[Action]:
    """Every action in ``text`` (a whole scenario file's contents), in file order."""
    return [parse_line(line, number) for number, line in _numbered_lines(text) if line != ""]


def parse_bytes(data: bytes) -> list[Action]:
    """Like ``parse_text``, for raw file contents; invalid UTF-8 is an error naming its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_number = len(_BYTE_LINE_BREAK.findall(data, 0, exc.start)) + 1
        raise ScenarioError(
            f"not valid UTF-8 (byte {exc.start} of the file: {exc.reason})", line_number
        ) from None
    return parse_text(text)


def read_scenario(path: str | Path) -> list[Action]:
    return parse_bytes(Path(path).read_bytes())


def _check_column(value: str, what: str, *, tabs_allowed: bool = False) -> str:
    if "\n" in value or "\r" in value:
        raise ScenarioError(f"{what} contains a line break, which the format cannot hold")
    if not tabs_allowed and "\t" in value:
        raise ScenarioError(f"{what} contains a tab, which would shift the columns")
    return value


def format_action(action: Action) -> str:
    """One line, without its line break. ``parse_line`` of it gives ``action`` back."""
    if not action.username:
        raise ScenarioError(f"action {action.id}: the username is empty")
    if action.command is Command.REGISTER:
        assert action.email is not None
        assert action.password is not None
        args = [
            _check_column(action.email, f"action {action.id}: the email"),
            _check_column(action.password, f"action {action.id}: the password"),
        ]
    elif action.command is Command.TWEET:
        assert action.text is not None
        args = [_check_column(action.text, f"action {action.id}: the text", tabs_allowed=True)]
    else:
        assert action.other is not None
        if not action.other:
            raise ScenarioError(f"action {action.id}: the other username is empty")
        args = [_check_column(action.other, f"action {action.id}: the other username")]
    if action.delay < 0:
        raise ScenarioError(f"action {action.id}: the delay is negative")
    username = _check_column(action.username, f"action {action.id}: the username")
    head = [str(action.id), str(action.delay), str(action.timestamp_ms), action.command.value]
    return "\t".join([*head, username, *args])


def format_scenario(actions: Iterable[Action]) -> str:
    """The whole file's text: every line ends with ``\\n``."""
    return "".join(format_action(action) + "\n" for action in actions)


def write_scenario(actions: Iterable[Action], destination: str | Path | IO[str]) -> None:
    """Write a scenario file (UTF-8, ``\\n`` line ends, no byte order mark)."""
    text = format_scenario(actions)
    if isinstance(destination, str | Path):
        Path(destination).write_text(text, encoding="utf-8", newline="")
    else:
        destination.write(text)
