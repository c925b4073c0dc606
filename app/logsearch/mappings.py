"""The Elasticsearch side of the logs, defined in Python with elasticsearch-dsl.

The mappings are built from ``app.observability.logs.FIELDS`` (every field the
app writes, with its intended type) plus the few fields the pipeline adds
(``PIPELINE_FIELDS``), so a field added to the app is mapped by changing one
list. Choices made on purpose:

- ``keyword`` for everything searched or aggregated by exact value (levels,
  actions, routes, request ids, user names, paths), capped with
  ``ignore_above`` so one enormous value cannot reject a document;
  ``text`` only for prose searched by words (``message``, ``error.message``,
  ``error.stack_trace``).
- numbers as ``long``: ``http.response.status_code`` (range queries such as
  ``>= 500``) and ``event.duration`` (nanoseconds, as ECS defines it);
  ``client.ip`` as ``ip`` (CIDR queries). A malformed number or address is
  ignored, not a rejected document.
- ``dynamic: false``: a field nobody declared stays in ``_source`` but is not
  indexed, so a stray field cannot explode the mapping or fix a wrong type.

Logs go to the data stream ``logs-minitwit-default`` (template pattern
``logs-minitwit-*``, priority above Elasticsearch's built-in ``logs`` template),
rolled over daily or at 10 GB and deleted ``LOG_RETENTION_DAYS`` after rollover.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elasticsearch_dsl import ComposableIndexTemplate, Object
from elasticsearch_dsl import Mapping as DslMapping
from elasticsearch_dsl.field import Field, construct_field

from app import __version__
from app.observability.logs import FIELDS

DATA_STREAM = "logs-minitwit-default"
INDEX_PATTERN = "logs-minitwit-*"
TEMPLATE_NAME = "logs-minitwit"
ILM_POLICY_NAME = "logs-minitwit"
# Above the built-in ``logs`` template (priority 100) that also matches logs-*-*.
TEMPLATE_PRIORITY = 200
KEYWORD_IGNORE_ABOVE = 1024

# Fields the app does not write but the pipeline adds: the container Filebeat
# read the line from, the data stream fields the Elasticsearch output sets,
# and Logstash's tags (e.g. _jsonparsefailure on a line that was not JSON).
PIPELINE_FIELDS: Mapping[str, str] = {
    "container.id": "keyword",
    "container.name": "keyword",
    "container.image.name": "keyword",
    "data_stream.type": "constant_keyword",
    "data_stream.dataset": "constant_keyword",
    "data_stream.namespace": "constant_keyword",
    "tags": "keyword",
}


def declared_fields() -> dict[str, str]:
    """Every field a log document may carry, with its type: the app's, then the pipeline's."""
    return {**FIELDS, **PIPELINE_FIELDS}


def _leaf(es_type: str) -> Field:
    params: dict[str, Any] = {}
    if es_type == "keyword":
        params["ignore_above"] = KEYWORD_IGNORE_ABOVE
    elif es_type in {"long", "ip"}:
        params["ignore_malformed"] = True
    return construct_field(es_type, **params)


def _tree(fields: Mapping[str, str]) -> dict[str, Any]:
    """``{"http.response.status_code": "long"}`` -> ``{"http": {"response": {...: "long"}}}``."""
    tree: dict[str, Any] = {}
    for name, es_type in fields.items():
        *parents, last = name.split(".") if not name.startswith("@") else [name]
        node = tree
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{name}: {part} is declared as a field and as an object")
            node = child
        if last in node:
            raise ValueError(f"{name} is declared twice, or as a field and an object")
        node[last] = es_type
    return tree


def _dsl_fields(tree: Mapping[str, Any]) -> dict[str, Field]:
    return {
        name: Object(properties=_dsl_fields(value)) if isinstance(value, dict) else _leaf(value)
        for name, value in tree.items()
    }


def log_mapping() -> DslMapping:
    mapping = DslMapping()
    mapping.meta("dynamic", False)
    mapping.meta("date_detection", False)
    for name, dsl_field in _dsl_fields(_tree(declared_fields())).items():
        mapping.field(name, dsl_field)
    return mapping


def index_template() -> ComposableIndexTemplate:
    template = ComposableIndexTemplate(TEMPLATE_NAME, INDEX_PATTERN, priority=TEMPLATE_PRIORITY)
    template.settings(
        **{
            "index.lifecycle.name": ILM_POLICY_NAME,
            "index.number_of_shards": 1,
            # 0 replicas on a one-node cluster (green, not yellow), 1 once there are two.
            "index.auto_expand_replicas": "0-1",
        }
    )
    # (Not through Index.clone(): cloning drops the mapping's dynamic/date_detection.)
    template.mapping(log_mapping())
    return template


def index_template_body() -> dict[str, Any]:
    """The body of ``PUT _index_template/logs-minitwit``."""
    body = index_template().to_dict()
    body["data_stream"] = {}
    body["_meta"] = {"managed_by": "minitwit logs setup", "minitwit_version": __version__}
    return body


def ilm_policy(retention_days: int) -> dict[str, Any]:
    """The body of ``PUT _ilm/policy/logs-minitwit``: roll over daily, delete after retention."""
    if retention_days < 1:
        raise ValueError("retention must be at least one day")
    return {
        "_meta": {"managed_by": "minitwit logs setup"},
        "phases": {
            "hot": {
                "min_age": "0ms",
                "actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "10gb"}},
            },
            # min_age counts from rollover: a day's index goes retention_days after it closed.
            "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}},
        },
    }


def mapped_types(properties: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a mappings ``properties`` object into ``{"a.b.c": "type"}`` for its leaves."""
    flat: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            flat.update(mapped_types(spec["properties"], f"{path}."))
        else:
            flat[path] = spec["type"]
    return flat
