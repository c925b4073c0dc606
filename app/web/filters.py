"""Template filters of the classic MiniTwit: dates and gravatars."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import md5

from quart import Quart


def format_datetime(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d @ %H:%M")


def gravatar_url(email: str, size: int = 80) -> str:
    """Gravatar's URL scheme is an MD5 of the address; it is an identifier, not security."""
    digest = md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?d=identicon&s={size}"


def register(app: Quart) -> None:
    app.jinja_env.filters["datetimeformat"] = format_datetime
    app.jinja_env.filters["gravatar"] = gravatar_url
