"""The data: users, who follows whom, messages, and the simulator's latest id.

Constraints live in the database, not only in Python, because replicas race:
a unique username and a unique (follower, followed) pair are what keep two
simultaneous requests from writing the same thing twice.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index, PartialIndex
from tortoise.models import Model

from app.validation import STORED_TEXT_MAX


class User(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=STORED_TEXT_MAX, unique=True)
    email = fields.CharField(max_length=STORED_TEXT_MAX)
    pw_hash = fields.CharField(max_length=STORED_TEXT_MAX)

    class Meta:
        table = "user"


# ``who`` follows ``whom``; one row per pair, enforced by the database.
class Follower(Model):
    id = fields.IntField(primary_key=True)
    who: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="following", on_delete=fields.CASCADE
    )
    whom: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="followers", on_delete=fields.CASCADE
    )

    class Meta:
        table = "follower"
        unique_together = (("who", "whom"),)
        indexes = (Index(fields=("whom_id",), name="follower_whom_idx"),)


# A post. ``pub_date`` is unix seconds, as in the original schema and the API.
class Message(Model):
    id = fields.BigIntField(primary_key=True)
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="messages", on_delete=fields.CASCADE
    )
    text = fields.TextField()
    pub_date = fields.BigIntField()
    flagged = fields.BooleanField(default=False)

    class Meta:
        table = "message"
        # Timelines read newest first: (pub_date, id) scanned backwards gives
        # the deterministic order without a sort, for everyone and per author.
        # The home timeline (app.services.messages) takes each followed author's
        # newest unflagged (pub_date, id) from the partial index without touching
        # the table, so its cost is bounded by follows x page size, not by how
        # much the followed ever wrote.
        indexes = (
            Index(fields=("pub_date", "id"), name="message_public_idx"),
            Index(fields=("author_id", "pub_date", "id"), name="message_author_idx"),
            PartialIndex(
                fields=("author_id", "pub_date", "id"),
                name="message_author_unflagged_idx",
                condition={"flagged": False},
            ),
        )


# The simulator's last processed action id: a single row (id 1) shared by replicas.
# (Comments, not docstrings: Tortoise would copy a docstring into the schema.)
class Latest(Model):
    id = fields.IntField(primary_key=True)
    value = fields.BigIntField()

    class Meta:
        table = "latest"
