"""Refuse state-changing requests that another site made the browser send.

Browsers say where a request comes from in ``Sec-Fetch-Site`` (all current
ones) and ``Origin`` (on POSTs). A request is allowed when it comes from this
origin or from the user typing the address ("none"); plain HTTP clients, which
send neither header, keep working, as the existing test suites need.
"""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def is_cross_site(sec_fetch_site: str | None, origin: str | None, host: str) -> bool:
    if sec_fetch_site is not None:
        return sec_fetch_site.lower() not in ALLOWED_FETCH_SITES
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != host.lower()
