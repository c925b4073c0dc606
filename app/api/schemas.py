"""Request and response shapes, for the OpenAPI description only.

The handlers validate by hand because the contract fixes the error texts and
their order (``You have to enter a username`` before the email rule, ...),
which a generic validator would not reproduce; these models document exactly
what the handlers accept and return, and a test checks real responses
against them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel

from app.validation import EMAIL_MAX, MESSAGE_MAX, USERNAME_MAX

NO_DEFAULT = 100
NO_MAX = 1000
INT64_MAX = 2**63 - 1


class LatestQuery(BaseModel):
    latest: int | None = Field(
        default=None,
        ge=-INT64_MAX,
        le=INT64_MAX,
        description="Id of the scenario action this request belongs to.",
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
    email: str = Field(min_length=1, max_length=EMAIL_MAX, pattern="@")
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
    """Exactly one of ``follow`` and ``unfollow``, a string."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["follow"], "not": {"required": ["unfollow"]}},
                {"required": ["unfollow"], "not": {"required": ["follow"]}},
            ],
            "properties": {
                "follow": {"type": "string", "description": "Username to follow."},
                "unfollow": {"type": "string", "description": "Username to unfollow."},
            },
        }
    )

    follow: str | None = None
    unfollow: str | None = None


class NoContent(BaseModel):
    """Success, with an empty body (documented without content; see app.api.openapi)."""


class Error(BaseModel):
    status: int = Field(description="The HTTP status code again.")
    error_msg: str = Field(min_length=1, description="What was wrong, in words.")


class Health(BaseModel):
    status: str
    database: str
