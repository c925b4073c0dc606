"""Tortoise's own CLI reads its config from here (``tortoise makemigrations``).

Only developers changing models import this module: it reads the environment
at import time, which the running app never does outside ``Settings.from_env``.
"""

from app.config import Settings
from app.db import tortoise_config

TORTOISE_ORM = tortoise_config(Settings.from_env())
