"""Registering, finding and authenticating users."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from app import passwords
from app.errors import InvalidInput, UserNotFound
from app.models import User
from app.observability.metrics import timed_db
from app.validation import (
    MSG_USERNAME_TAKEN,
    STORED_TEXT_MAX,
    check_registration,
    check_text,
)


async def register(username: str, email: str, password: str, password2: str | None = None) -> User:
    """Create a user, or raise ``InvalidInput`` with the first rule it breaks.

    The existence check gives the friendly error in the usual case; the unique
    constraint catches the race where two registrations of one name interleave.
    """
    check_registration(username, email, password, password2)
    async with passwords.admitted():
        if await _username_taken(username):
            raise InvalidInput(MSG_USERNAME_TAKEN)
        pw_hash = await passwords.hash_password(password)
        try:
            return await _create_user(username, email, pw_hash)
        except IntegrityError:
            raise InvalidInput(MSG_USERNAME_TAKEN) from None


@timed_db("user_lookup")
async def _username_taken(username: str) -> bool:
    return await User.exists(username=username)


@timed_db("user_insert")
async def _create_user(username: str, email: str, pw_hash: str) -> User:
    return await User.create(username=username, email=email, pw_hash=pw_hash)


@timed_db("user_lookup")
async def find(username: str) -> User | None:
    if not _storable(username):
        return None
    return await User.get_or_none(username=username)


async def get(username: str) -> User:
    user = await find(username)
    if user is None:
        raise UserNotFound(username)
    return user


def check_lookup(username: str) -> None:
    """A name the database could not store is nobody's: a 404 without a query."""
    if not _storable(username):
        raise UserNotFound(username)


def _storable(username: str) -> bool:
    """Whether the username column could hold the name. PostgreSQL refuses a NUL or a
    lone surrogate with an error, and Tortoise refuses a name longer than the column
    even in a lookup: either was a 500 where the answer is "no such user"."""
    if len(username) > STORED_TEXT_MAX:
        return False
    try:
        check_text("username", username)
    except InvalidInput:
        return False
    return True


@timed_db("user_lookup")
async def get_id(username: str) -> int:
    """The id alone, for the few who need nothing else of the user."""
    check_lookup(username)
    user_id = await User.filter(username=username).first().values_list("id", flat=True)
    if user_id is None:
        raise UserNotFound(username)
    return int(user_id)  # type: ignore[call-overload]


@timed_db("user_by_id")
async def by_id(user_id: int) -> User | None:
    return await User.get_or_none(id=user_id)


class LoginFailed(InvalidInput):
    """Wrong username or password; the message says which, as the classic UI does."""


async def authenticate(username: str, password: str) -> User:
    async with passwords.admitted():
        user = await find(username)
        if user is None:
            raise LoginFailed("Invalid username")
        if not await passwords.verify_password(user.pw_hash, password):
            raise LoginFailed("Invalid password")
        if passwords.needs_upgrade(user.pw_hash):
            user.pw_hash = await passwords.hash_password(password)
            await user.save(update_fields=["pw_hash"])
        return user
