"""Request and response shapes, for the OpenAPI description only.

The handlers validate by hand because the contract fixes the error texts and
their order (``You have to enter a username`` before the email rule, ...),
which a generic validator would not reproduce; these models document exactly
what the handlers accept and return, and a test checks real responses
against them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, RootModel

from app.validation import EMAIL_MAX, MESSAGE_MAX, USERNAME_MAX

NO_DEFAULT = 100
NO_MAX = 1000


class LatestQuery(BaseModel):
    latest: int | None = Field(
        default=None, description="Id of the scenario action this request belongs to."
    )


class ListQuery(LatestQuery):
    no: int | None = Field(
        default=NO_DEFAULT,
        ge=0,
        description=f"How many items to return (default {NO_DEFAULT}, at most {NO_MAX}).",
    )


class LatestResponse(BaseModel):
    latest: int = Field(description="Last recorded action id, -1 before any.")


class RegisterRequest(BaseModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    email: str = Field(min_length=3, max_length=EMAIL_MAX, pattern="@")
    pwd: str = Field(min_length=1)


class MessageOut(BaseModel):
    content: str
    pub_date: int = Field(description="Unix seconds.")
    user: str


class MessageList(RootModel[list[MessageOut]]):
    pass


class MessageIn(BaseModel):
    content: str = Field(min_length=1, max_length=MESSAGE_MAX)


class FollowsOut(BaseModel):
    follows: list[str]


class FollowRequest(BaseModel):
    follow: str | None = Field(default=None, description="Username to follow.")
    unfollow: str | None = Field(default=None, description="Username to unfollow.")


class Error(BaseModel):
    status: int
    error_msg: str


class Health(BaseModel):
    status: str
    database: str
