"""Settings, read once from the environment (12-factor).

Every knob has a default that works on a laptop (SQLite file, ports 5000/5001,
a development secret). Production mode (``MINITWIT_ENV=production``) refuses to
start with the development secret, so a forgotten variable fails loudly at boot
instead of signing sessions with a key that is public on GitHub.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEVELOPMENT_SECRET = "development-secret-do-not-use-in-production"  # noqa: S105


class ConfigError(ValueError):
    """The environment describes a configuration that must not run."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment; see the README's table."""

    environment: str = "development"
    database_url: str = "sqlite://minitwit.db"
    host: str = "127.0.0.1"
    web_port: int = 5000
    api_port: int = 5001
    workers: int = 1
    secret_key: str = field(default=DEVELOPMENT_SECRET, repr=False)
    simulator_username: str = "simulator"
    simulator_password: str = field(default="super_safe!", repr=False)
    db_pool_size: int = 10
    db_timeout: float = 0.25
    db_connect_timeout: float = 2.0
    hash_concurrency: int = 2  # measured best on 2 cores, with admissions: bench/hashing.py
    shutdown_timeout: int = 10
    secure_cookies: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "INFO"
    slow_request_seconds: float = 0.3
    logstash_host: str | None = None
    logstash_port: int = 5000
    logstash_queue_size: int = 10_000
    log_drop_report_seconds: float = 60.0
    revision: str = "unknown"
    fault_injection: bool = False
    # A benchmarking knob: off skips the request middleware (HTTP metrics and access
    # events) so bench/overhead.py can measure what it costs. Keep it on in service.
    observability: bool = True

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        environment = env.get("MINITWIT_ENV", "development")
        if environment not in {"development", "production", "test"}:
            raise ConfigError(
                f"MINITWIT_ENV must be development, production or test, got {environment!r}"
            )
        production = environment == "production"
        settings = cls(
            environment=environment,
            database_url=env.get("DATABASE_URL") or cls.database_url,
            host=env.get("MINITWIT_HOST") or cls.host,
            web_port=_int(env, "MINITWIT_WEB_PORT", cls.web_port),
            api_port=_int(env, "MINITWIT_API_PORT", cls.api_port),
            workers=_int(env, "MINITWIT_WORKERS", cls.workers, minimum=1),
            secret_key=env.get("MINITWIT_SECRET_KEY") or DEVELOPMENT_SECRET,
            simulator_username=env.get("SIMULATOR_USERNAME") or cls.simulator_username,
            simulator_password=env.get("SIMULATOR_PASSWORD") or cls.simulator_password,
            db_pool_size=_int(env, "MINITWIT_DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            db_timeout=_float(env, "MINITWIT_DB_TIMEOUT", cls.db_timeout),
            db_connect_timeout=_float(env, "MINITWIT_DB_CONNECT_TIMEOUT", cls.db_connect_timeout),
            hash_concurrency=_int(env, "MINITWIT_HASH_CONCURRENCY", cls.hash_concurrency, 1),
            shutdown_timeout=_int(env, "MINITWIT_SHUTDOWN_TIMEOUT", cls.shutdown_timeout),
            secure_cookies=_bool(env, "MINITWIT_SECURE_COOKIES", production),
            forwarded_allow_ips=env.get("MINITWIT_FORWARDED_ALLOW_IPS") or cls.forwarded_allow_ips,
            log_level=(env.get("MINITWIT_LOG_LEVEL") or cls.log_level).upper(),
            slow_request_seconds=_float(
                env, "MINITWIT_SLOW_REQUEST_SECONDS", cls.slow_request_seconds
            ),
            logstash_host=env.get("LOGSTASH_HOST") or None,
            logstash_port=_int(env, "LOGSTASH_PORT", cls.logstash_port, minimum=1),
            logstash_queue_size=_int(
                env, "MINITWIT_LOGSTASH_QUEUE_SIZE", cls.logstash_queue_size, minimum=1
            ),
            log_drop_report_seconds=_float(
                env, "MINITWIT_LOG_DROP_REPORT_SECONDS", cls.log_drop_report_seconds
            ),
            revision=env.get("MINITWIT_REVISION") or cls.revision,
            fault_injection=_bool(env, "MINITWIT_FAULT_INJECTION", False),
            observability=_bool(env, "MINITWIT_OBSERVABILITY", True),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse configurations that would run but be wrong."""
        if self.is_production and self.secret_key == DEVELOPMENT_SECRET:
            raise ConfigError(
                "MINITWIT_ENV=production needs MINITWIT_SECRET_KEY: "
                "refusing to sign sessions with the development secret"
            )
        if self.is_production and len(self.secret_key) < 32:
            raise ConfigError("MINITWIT_SECRET_KEY must be at least 32 characters in production")
        if self.is_production and self.fault_injection:
            raise ConfigError("MINITWIT_FAULT_INJECTION is for tests and cannot run in production")
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"MINITWIT_LOG_LEVEL must be a level name, got {self.log_level!r}")
        if self.web_port == self.api_port:
            raise ConfigError("MINITWIT_WEB_PORT and MINITWIT_API_PORT must differ")
        if not self.database_url.startswith(("sqlite://", "postgres://", "postgresql://")):
            raise ConfigError(
                "DATABASE_URL must start with sqlite://, postgres:// or postgresql://"
            )
