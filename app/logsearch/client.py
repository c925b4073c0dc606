"""Connecting to Elasticsearch, and saying clearly why it did not work.

The log commands are for people: an unreachable cluster or a wrong password
is one sentence naming the URL and the variable to fix, never a traceback.
"""

from __future__ import annotations

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    UnsupportedProductError,
)

from app.logsearch.settings import LogStackSettings

REQUEST_TIMEOUT = 10.0


class LogStackError(Exception):
    """Something outside the app (Elasticsearch, Kibana) refused or did not answer."""


def elasticsearch_client(settings: LogStackSettings) -> Elasticsearch:
    try:
        return Elasticsearch(
            settings.elasticsearch_url,
            basic_auth=settings.basic_auth,
            request_timeout=REQUEST_TIMEOUT,
            max_retries=0,
            retry_on_timeout=False,
        )
    except ValueError as exc:
        raise LogStackError(
            f"ELASTICSEARCH_URL={settings.elasticsearch_url!r} is not usable "
            f"(expected something like http://localhost:9200): {exc}"
        ) from None


def _reason(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("reason"):
            return str(error["reason"])
        if isinstance(error, str):
            return error
    return str(exc.message)


def explain(exc: Exception, settings: LogStackSettings) -> str:
    """One sentence for an error the Elasticsearch client raised."""
    url = settings.elasticsearch_url
    if isinstance(exc, ConnectionTimeout):
        return f"Elasticsearch at {url} did not answer within {REQUEST_TIMEOUT:.0f} s"
    if isinstance(exc, TransportConnectionError):
        return (
            f"cannot reach Elasticsearch at {url} ({exc.message}); "
            "is it running, and is ELASTICSEARCH_URL right?"
        )
    if isinstance(exc, AuthenticationException):
        if settings.password is None:
            return (
                f"Elasticsearch at {url} wants credentials (401): set ELASTICSEARCH_PASSWORD "
                "(or ELASTIC_PASSWORD) and, for a user other than 'elastic', ELASTICSEARCH_USERNAME"
            )
        return (
            f"Elasticsearch at {url} rejected the credentials of user "
            f"{settings.basic_auth[0] if settings.basic_auth else '?'!r} (401): check "
            "ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD (or ELASTIC_PASSWORD)"
        )
    if isinstance(exc, AuthorizationException):
        return f"Elasticsearch at {url} refused the request (403): {_reason(exc)}"
    if isinstance(exc, UnsupportedProductError):
        return f"the server at {url} does not identify itself as Elasticsearch"
    if isinstance(exc, ApiError):
        return f"Elasticsearch at {url} answered {exc.status_code}: {_reason(exc)}"
    if isinstance(exc, TransportError):
        return f"talking to Elasticsearch at {url} failed: {exc.message}"
    return f"talking to Elasticsearch at {url} failed: {exc!r}"


# What ``explain`` knows how to put in words.
ELASTICSEARCH_ERRORS: tuple[type[Exception], ...] = (ApiError, TransportError)
