"""Where the log stack is and how long logs are kept, from the environment only.

| variable | default |
| --- | --- |
| ``ELASTICSEARCH_URL`` | ``http://localhost:9200`` |
| ``ELASTICSEARCH_USERNAME`` (or ``ELASTIC_USERNAME``) | ``elastic`` when a password is set |
| ``ELASTICSEARCH_PASSWORD`` (or ``ELASTIC_PASSWORD``) | none: no authentication |
| ``KIBANA_URL`` | ``http://localhost:5601`` |
| ``LOG_RETENTION_DAYS`` | ``14`` |

The ``ELASTIC_*`` spellings are the ones the Compose stack's ``.env`` uses
for Elasticsearch's built-in ``elastic`` user (Grafana's datasource reads the
same pair), so one ``.env`` serves all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.config import ConfigError

DEFAULT_ELASTICSEARCH_URL = "http://localhost:9200"
DEFAULT_KIBANA_URL = "http://localhost:5601"
DEFAULT_RETENTION_DAYS = 14

# (name, default, meaning), as ``minitwit logs --help`` and the README show them.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("ELASTICSEARCH_URL", DEFAULT_ELASTICSEARCH_URL, "the Elasticsearch the log commands use"),
    ("ELASTICSEARCH_USERNAME", "elastic", "its user (or ELASTIC_USERNAME)"),
    ("ELASTICSEARCH_PASSWORD", "unset: no auth", "its password (or ELASTIC_PASSWORD)"),
    ("KIBANA_URL", DEFAULT_KIBANA_URL, "where 'logs setup' imports the saved searches"),
    ("LOG_RETENTION_DAYS", str(DEFAULT_RETENTION_DAYS), "days logs are kept (ILM delete phase)"),
)


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class LogStackSettings:
    elasticsearch_url: str = DEFAULT_ELASTICSEARCH_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    kibana_url: str = DEFAULT_KIBANA_URL
    retention_days: int = DEFAULT_RETENTION_DAYS

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        if self.password is None:
            return None
        return (self.username or "elastic", self.password)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LogStackSettings:
        env = os.environ if env is None else env
        raw_days = env.get("LOG_RETENTION_DAYS") or str(DEFAULT_RETENTION_DAYS)
        try:
            days = int(raw_days)
        except ValueError:
            raise ConfigError(
                f"LOG_RETENTION_DAYS must be a whole number, got {raw_days!r}"
            ) from None
        if days < 1:
            raise ConfigError(f"LOG_RETENTION_DAYS must be at least 1, got {days}")
        return cls(
            elasticsearch_url=(env.get("ELASTICSEARCH_URL") or DEFAULT_ELASTICSEARCH_URL).rstrip(
                "/"
            ),
            username=_first(env, "ELASTICSEARCH_USERNAME", "ELASTIC_USERNAME"),
            password=_first(env, "ELASTICSEARCH_PASSWORD", "ELASTIC_PASSWORD"),
            kibana_url=(env.get("KIBANA_URL") or DEFAULT_KIBANA_URL).rstrip("/"),
            retention_days=days,
        )
