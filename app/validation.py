"""Input rules shared by the web UI and the simulator API.

The limits are the documented contract (simulator-api.md): a username is 1 to
64 characters, an email at most 254, a message 1 to 1,000. Text must be
storable as UTF-8 without loss: a lone surrogate or a NUL byte would either
fail deep in the database driver (a 500) or be silently altered, so both are
refused up front with a 400.
"""

from __future__ import annotations

from app.errors import InvalidInput

USERNAME_MAX = 64
EMAIL_MAX = 254
MESSAGE_MAX = 1000
# The columns' own limit (username, email, pw_hash): users imported from the
# legacy MiniTwit may have names up to this long, never longer.
STORED_TEXT_MAX = 255

MSG_NO_USERNAME = "You have to enter a username"
MSG_BAD_EMAIL = "You have to enter a valid email address"
MSG_NO_PASSWORD = "You have to enter a password"  # noqa: S105
MSG_PASSWORD_MISMATCH = "The two passwords do not match"  # noqa: S105
MSG_USERNAME_TAKEN = "The username is already taken"


def check_text(name: str, value: str) -> None:
    """Refuse text that cannot round-trip through UTF-8 storage unchanged."""
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    check_encodable(name, value)


def check_encodable(name: str, value: str) -> None:
    """Refuse text that has no UTF-8 form (a lone surrogate): enough for a password,
    which is hashed, never stored, so a NUL in it is just another character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} must be valid Unicode text (no lone surrogates)") from None


def check_registration(
    username: str, email: str, password: str, password2: str | None = None
) -> None:
    """The registration rules, in the order the existing test suites expect their texts."""
    if not username:
        raise InvalidInput(MSG_NO_USERNAME)
    if not email or "@" not in email:
        raise InvalidInput(MSG_BAD_EMAIL)
    if not password:
        raise InvalidInput(MSG_NO_PASSWORD)
    if password2 is not None and password != password2:
        raise InvalidInput(MSG_PASSWORD_MISMATCH)
    if len(username) > USERNAME_MAX:
        raise InvalidInput(f"The username must be at most {USERNAME_MAX} characters")
    if len(email) > EMAIL_MAX:
        raise InvalidInput(f"The email address must be at most {EMAIL_MAX} characters")
    check_text("username", username)
    check_text("email", email)
    check_encodable("password", password)


def check_message(text: str) -> None:
    if not text:
        raise InvalidInput("The message must not be empty")
    if len(text) > MESSAGE_MAX:
        raise InvalidInput(f"The message must be at most {MESSAGE_MAX} characters")
    check_text("message", text)
