"""The OpenAPI description is valid, complete, and true to what the running app answers.

The document is fetched from a real ``minitwit serve`` (on the API port and
under ``/api`` on the web port), validated as OpenAPI 3.1, and then every
answer of a run of real requests, successes and errors, is held against it:
the path and method must be documented (or the answer must be the documented
404/405 for undocumented ones), the status must be listed for the operation,
and the body must validate against the documented schema (jsonschema, with the
document's ``$ref``s resolved). A status or route the app gives that the
document lacks fails the test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.factory import MAX_BODY_BYTES, create_api_app
from tests.conftest import SIMULATOR_AUTH, LiveServer, make_settings

SPEC_URI = "urn:minitwit:openapi"
PUBLIC = "public"
PROTECTED = "protected"

# The simulator contract (simulator-api.md), operation by operation: who may
# call it and every status it can answer (503: the database is unavailable).
CONTRACT: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("/latest", "get"): (PUBLIC, {200, 503}),
    ("/register", "post"): (PUBLIC, {204, 400, 413, 503}),
    ("/msgs", "get"): (PROTECTED, {200, 400, 403, 503}),
    ("/msgs/{username}", "get"): (PROTECTED, {200, 400, 403, 404, 503}),
    ("/msgs/{username}", "post"): (PROTECTED, {204, 400, 403, 404, 413, 503}),
    ("/fllws/{username}", "get"): (PROTECTED, {200, 400, 403, 404, 503}),
    ("/fllws/{username}", "post"): (PROTECTED, {204, 400, 403, 404, 413, 503}),
    ("/health", "get"): (PUBLIC, {200, 503}),
}
# The routes quart-schema serves about the document itself.
DOCUMENTATION_ROUTES = {"/openapi.json", "/docs"}


@dataclass
class Spec:
    document: dict[str, Any]
    origin: str  # scheme://host:port the document was fetched from

    def __post_init__(self) -> None:
        resource = Resource(contents=self.document, specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    @property
    def base_url(self) -> str:
        """Where the documented paths live, from the document's own ``servers``."""
        return self.origin + self.document["servers"][0]["url"].rstrip("/")

    def validator(self, *pointer: str) -> Draft202012Validator:
        """A validator for the schema at ``pointer`` inside the document."""
        escaped = "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in pointer)
        return Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{quote(escaped)}"}, registry=self.registry
        )

    def template_for(self, path: str) -> str | None:
        for template in self.document["paths"]:
            pattern = re.sub(r"\\\{[^}]+\\\}", ".+", re.escape(template))
            if re.fullmatch(pattern, path):
                return str(template)
        return None


async def fetch_spec(origin: str, prefix: str) -> Spec:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{origin}{prefix}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return Spec(response.json(), origin)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(params=["api-port", "web-port-api-prefix"])
async def spec(request: pytest.FixtureRequest, live: LiveServer) -> Spec:
    if request.param == "api-port":
        return await fetch_spec(_origin(live.api_url), "")
    return await fetch_spec(_origin(live.web_url), "/api")


# --------------------------------------------------------------------------- the document


async def test_the_document_is_valid_openapi(spec: Spec) -> None:
    validate_openapi(spec.document)
    assert spec.document["openapi"].startswith("3.1")


async def test_both_ports_serve_the_same_description(live: LiveServer) -> None:
    on_api = await fetch_spec(_origin(live.api_url), "")
    on_web = await fetch_spec(_origin(live.web_url), "/api")
    assert on_api.document["servers"] == [{"url": "/"}]
    assert on_web.document["servers"] == [{"url": "/api"}]
    del on_api.document["servers"], on_web.document["servers"]
    assert on_api.document == on_web.document


async def test_every_simulator_operation_is_documented_as_the_contract_says(spec: Spec) -> None:
    paths = spec.document["paths"]
    schemes = spec.document["components"]["securitySchemes"]
    assert schemes["simulator"] == {"type": "http", "scheme": "basic"}
    assert "security" not in spec.document  # no global default: each operation says
    for (path, method), (access, statuses) in CONTRACT.items():
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
        operation = paths[path][method]
        documented = {int(status) for status in operation["responses"]}
        assert documented == statuses, (path, method)
        if access == PROTECTED:
            assert operation["security"] == [{"simulator": []}], (path, method)
        else:
            assert not operation.get("security"), (path, method)
        for status, response in operation["responses"].items():
            assert response["description"], (path, method, status)
            if status == "204":
                assert "content" not in response, "a 204 has no body"
            else:
                assert set(response["content"]) == {"application/json"}, (path, method, status)
        if method == "post":
            assert "application/json" in operation["requestBody"]["content"]
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        if path in ("/latest", "/health"):
            assert query == set(), (path, method)
        elif method == "get":  # every request but GET /latest may carry ?latest=
            assert query == {"latest", "no"}, (path, method)
        else:
            assert query == {"latest"}, (path, method)
    for name in ("NotFound", "MethodNotAllowed"):
        response = spec.document["components"]["responses"][name]
        assert "application/json" in response["content"]


async def test_every_route_the_app_serves_is_documented(spec: Spec, database_url: str) -> None:
    """The API app's own routing table, method by method, against the document."""
    app = create_api_app(make_settings(database_url))
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]*:)?([^>]+)>", r"{\1}", rule.rule)
        if path in DOCUMENTATION_ROUTES:
            continue
        # HEAD (GET without the body) and OPTIONS (the Allow header) are answered
        # by the HTTP layer for every route; OpenAPI leaves them implicit.
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {
        (path, method) for path, item in spec.document["paths"].items() for method in item
    }
    assert served == documented
    assert set(CONTRACT) <= served


# --------------------------------------------------------------------------- real answers


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int  # what the contract says the app answers
    json_body: Any = None
    raw_body: bytes | None = None
    auth: bool = True


def exchanges() -> list[Exchange]:
    big = b'{"content": "' + b"x" * MAX_BODY_BYTES + b'"}'
    carol = {"username": "carol", "email": "carol@example.com", "pwd": "pw"}
    return [
        Exchange("GET", "/latest", 200),
        Exchange("GET", "/health", 200),
        Exchange("GET", "/metrics", 200),
        Exchange("POST", "/register?latest=1", 204, carol),
        Exchange("POST", "/register", 400, carol),
        Exchange("POST", "/register", 400, {"username": "dave", "email": "x", "pwd": "pw"}),
        Exchange("POST", "/register?latest=x", 400, {**carol, "username": "erin"}),
        Exchange("POST", "/register", 400, raw_body=b"[1, 2"),
        Exchange("POST", "/register", 413, raw_body=big),
        Exchange("POST", "/msgs/alice?latest=2", 204, {"content": "hello «world» 🎉"}),
        Exchange("POST", "/msgs/bob", 204, {"content": "hi"}),
        Exchange("POST", "/msgs/alice", 400, {"content": ""}),
        Exchange("POST", "/msgs/alice", 400, raw_body=b'"just a string"'),
        Exchange("POST", "/msgs/ghost", 404, {"content": "boo"}),
        Exchange("POST", "/msgs/alice", 403, {"content": "x"}, auth=False),
        Exchange("POST", "/msgs/alice", 413, raw_body=big),
        Exchange("GET", "/msgs", 200),
        Exchange("GET", "/msgs?no=1&latest=3", 200),
        Exchange("GET", "/msgs?no=-1", 400),
        Exchange("GET", "/msgs", 403, auth=False),
        Exchange("GET", "/msgs/alice?no=5", 200),
        Exchange("GET", "/msgs/ghost", 404),
        Exchange("GET", "/msgs/alice?latest=1.5", 400),
        Exchange("GET", "/msgs/alice", 403, auth=False),
        Exchange("POST", "/fllws/alice", 204, {"follow": "bob"}),
        Exchange("POST", "/fllws/alice", 204, {"follow": "carol"}),
        Exchange("POST", "/fllws/alice", 204, {"unfollow": "carol"}),
        Exchange("POST", "/fllws/alice", 400, {"follow": "bob", "unfollow": "bob"}),
        Exchange("POST", "/fllws/alice", 404, {"follow": "ghost"}),
        Exchange("POST", "/fllws/alice", 403, {"follow": "bob"}, auth=False),
        Exchange("POST", "/fllws/alice", 413, raw_body=big),
        Exchange("GET", "/fllws/alice?no=10", 200),
        Exchange("GET", "/fllws/alice?no=x", 400),
        Exchange("GET", "/fllws/ghost", 404),
        Exchange("GET", "/fllws/alice", 403, auth=False),
        Exchange("GET", "/latest", 200),
        # Outside the documented operations: the component responses.
        Exchange("DELETE", "/msgs", 405),
        Exchange("GET", "/register", 405),
        Exchange("POST", "/latest", 405, {"latest": 1}),
        Exchange("PUT", "/fllws/alice", 405, {"follow": "bob"}),
        Exchange("GET", "/nope", 404),
        Exchange("GET", "/msgs/", 404),
    ]


@dataclass(frozen=True)
class Answer:
    exchange: Exchange
    status: int
    content_type: str
    body: bytes


@pytest.fixture
async def answers(spec: Spec) -> list[Answer]:
    """Every exchange sent to the URL the document names, after registering alice and bob."""
    results = []
    async with httpx.AsyncClient(base_url=spec.base_url, timeout=30) as client:
        for name in ("alice", "bob"):
            account = {"username": name, "email": f"{name}@example.com", "pwd": "pw"}
            assert (await client.post("/register", json=account)).status_code == 204
        for exchange in exchanges():
            headers = dict(SIMULATOR_AUTH) if exchange.auth else {}
            content = exchange.raw_body
            if exchange.json_body is not None:
                content = json.dumps(exchange.json_body).encode()
            if content is not None:
                headers["Content-Type"] = "application/json"
            response = await client.request(
                exchange.method, exchange.path, content=content, headers=headers
            )
            results.append(
                Answer(
                    exchange,
                    response.status_code,
                    response.headers.get("content-type", ""),
                    response.content,
                )
            )
    return results


def check_answer(spec: Spec, answer: Answer) -> None:
    exchange = answer.exchange
    where = f"{exchange.method} {exchange.path} -> {answer.status}"
    path, _, query = exchange.path.partition("?")
    method = exchange.method.lower()
    template = spec.template_for(path)
    if template is None or method not in spec.document["paths"][template]:
        component = "NotFound" if template is None else "MethodNotAllowed"
        assert answer.status == (404 if template is None else 405), where
        pointer: tuple[str, ...] = ("components", "responses", component)
        documented = spec.document["components"]["responses"][component]
    else:
        responses = spec.document["paths"][template][method]["responses"]
        assert str(answer.status) in responses, f"undocumented status: {where}"
        pointer = ("paths", template, method, "responses", str(answer.status))
        documented = responses[str(answer.status)]
        names = {p["name"] for p in spec.document["paths"][template][method]["parameters"]}
        for pair in filter(None, query.split("&")):
            assert pair.split("=")[0] in names, f"undocumented parameter: {where}"
    if "content" not in documented:
        assert answer.body == b"", where
        return
    media_type = answer.content_type.split(";")[0].strip()
    assert media_type in documented["content"], f"undocumented media type {media_type}: {where}"
    if media_type != "application/json":
        return
    errors = list(
        spec.validator(*pointer, "content", media_type, "schema").iter_errors(
            json.loads(answer.body)
        )
    )
    assert not errors, f"{where}: {[e.message for e in errors]}"
    if answer.status >= 400:
        assert json.loads(answer.body)["status"] == answer.status, where


async def test_real_answers_are_the_documented_ones(spec: Spec, answers: list[Answer]) -> None:
    for answer in answers:
        assert answer.status == answer.exchange.status, (answer.exchange, answer.body[:200])
        check_answer(spec, answer)


async def test_every_documented_answer_was_seen(spec: Spec, answers: list[Answer]) -> None:
    """The run above exercises every documented status but 503 (an outage): none is made up."""
    seen = set()
    for answer in answers:
        template = spec.template_for(answer.exchange.path.partition("?")[0])
        seen.add((template, answer.exchange.method.lower(), answer.status))
    for path, item in spec.document["paths"].items():
        for method, operation in item.items():
            for status in operation["responses"]:
                if status != "503":
                    assert (path, method, int(status)) in seen, (path, method, status)


async def test_accepted_request_bodies_match_the_documented_schemas(
    spec: Spec, answers: list[Answer]
) -> None:
    """A body the app accepts, the document accepts; the malformed ones it rejects too."""
    for answer in answers:
        exchange = answer.exchange
        if exchange.json_body is None:
            continue
        template = spec.template_for(exchange.path.partition("?")[0])
        method = exchange.method.lower()
        if template is None or method not in spec.document["paths"][template]:
            continue
        validator = spec.validator(
            "paths", template, method, "requestBody", "content", "application/json", "schema"
        )
        if answer.status == 204:
            assert validator.is_valid(exchange.json_body), exchange
    rejected = {
        "/register": [{"username": "", "email": "a@b", "pwd": "x"}, {"username": "x"}, []],
        "/msgs/{username}": [{"content": ""}, {"content": 1}, {"content": "m" * 1001}],
        "/fllws/{username}": [{}, {"follow": "a", "unfollow": "b"}, {"follow": None}],
    }
    for path, bodies in rejected.items():
        validator = spec.validator(
            "paths", path, "post", "requestBody", "content", "application/json", "schema"
        )
        for bad in bodies:
            assert not validator.is_valid(bad), (path, bad)


async def test_a_wrong_answer_fails_the_check(spec: Spec) -> None:
    """The checker itself: an undocumented status or a body off-schema is caught."""
    wrong = [
        Answer(Exchange("GET", "/msgs", 500), 500, "application/json", b'{"status": 500}'),
        Answer(Exchange("GET", "/latest", 200), 200, "application/json", b'{"latest": "7"}'),
        Answer(Exchange("POST", "/register", 204), 204, "application/json", b"{}"),
        Answer(Exchange("GET", "/msgs", 200), 200, "application/json", b'[{"content": "x"}]'),
        Answer(Exchange("GET", "/nope", 404), 404, "application/json", b'{"error": "x"}'),
        Answer(Exchange("DELETE", "/msgs", 405), 404, "application/json", b"{}"),
        Answer(Exchange("GET", "/msgs?page=2", 200), 200, "application/json", b"[]"),
    ]
    for answer in wrong:
        with pytest.raises(AssertionError):
            check_answer(spec, answer)
