"""The OpenAPI description of the simulator API, as quart-schema builds it plus what it cannot say.

quart-schema documents every response as a JSON model; what it has no words
for is added here, so that the description matches what the app does:

- an empty-bodied success (204) has no ``content`` at all;
- every response has a description (which status means what);
- the one plain-text operation, the Prometheus scrape at ``/metrics``;
- the errors any path gives outside its operations: an unknown path is a 404
  and a method a path does not document is a 405, both with the JSON error
  body (``components.responses.NotFound`` / ``MethodNotAllowed``);
- a request body is required wherever one is documented: the handlers answer
  a missing body with 400, so the document must not call it optional;
- ``servers`` names the prefix the document was fetched under (``/api`` on
  the web port), so its paths resolve to the API wherever it is mounted.
"""

from __future__ import annotations

from typing import Any

from quart import has_request_context, request
from quart_schema import OpenAPIProvider
from quart_schema.typing import Model

from app.api import schemas

STATUS_DESCRIPTIONS = {
    200: "Success.",
    204: "Done; the body is empty.",
    400: (
        "Bad input: a body that is not a JSON object, a missing, non-string or over-long "
        "field, or a malformed `no`/`latest` parameter; `error_msg` says which."
    ),
    403: "Missing or wrong simulator credentials.",
    404: "Unknown user (in the path, or the one to follow or unfollow).",
    413: "Request body larger than 1 MiB.",
    503: "The database is unavailable; try again shortly.",
}

# Operations whose answer is not JSON, so quart-schema has no model for them.
PLAIN_TEXT_OPERATIONS = {
    ("/metrics", "get"): "Prometheus metrics in the text exposition format.",
}

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


class SimulatorOpenAPIProvider(OpenAPIProvider):
    def build_response_object(
        self, model: type[Model], headers_model: type[Model] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if model is schemas.NoContent:
            return {"description": STATUS_DESCRIPTIONS[204]}, {}
        return super().build_response_object(model, headers_model)

    def schema(self) -> dict[str, Any]:
        schema = super().schema()
        for path, path_item in schema["paths"].items():
            for method, operation in path_item.items():
                if "requestBody" in operation:
                    operation["requestBody"]["required"] = True
                text = PLAIN_TEXT_OPERATIONS.get((path, method))
                if text and not operation["responses"]:
                    operation["responses"]["200"] = {
                        "description": text,
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                for status, response in operation["responses"].items():
                    if not response.get("description"):
                        response["description"] = STATUS_DESCRIPTIONS.get(int(status), "")
        components = schema["components"]
        components["schemas"]["Error"] = schemas.Error.model_json_schema()
        components["responses"] = {
            "NotFound": _error_response("404 for any path not documented here."),
            "MethodNotAllowed": _error_response(
                "405 for a method a documented path does not list; the Allow header "
                "names the methods it does."
            ),
        }
        if has_request_context():
            schema["servers"] = [{"url": request.root_path or "/"}]
        return schema
