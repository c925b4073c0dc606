"""The simulator's Basic credentials, compared in constant time."""

from __future__ import annotations

import base64
import hmac

FORBIDDEN_MESSAGE = "You are not authorized to use this resource!"


def is_simulator(authorization: str | None, username: str, password: str) -> bool:
    if not authorization:
        return False
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 underneath
        return False
    given_user, sep, given_password = decoded.partition(":")
    if not sep:
        return False
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return user_ok and password_ok
