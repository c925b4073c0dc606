"""The Elasticsearch index template and ILM policy, as elasticsearch-dsl generates them.

No cluster here: the tests check the generated bodies against what the app
declares (FIELDS) and what it actually writes (real log lines), which is where
a mapping goes wrong. Applying them to a cluster needs Elasticsearch.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from app.config import ConfigError
from app.logsearch import mappings, search
from app.logsearch.settings import LogStackSettings
from app.observability.logs import FIELDS
from tests.logdocs import app_log_lines, flatten


@pytest.fixture(scope="module")
def body() -> dict[str, Any]:
    return mappings.index_template_body()


@pytest.fixture(scope="module")
def mapped(body: dict[str, Any]) -> dict[str, str]:
    return mappings.mapped_types(body["template"]["mappings"]["properties"])


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What the real apps log for sign-ups, posts, follows, logins, 404s, slow requests, a bug."""
    return [flatten(line) for line in app_log_lines(tmp_path_factory.mktemp("index"))]


def test_every_field_the_app_declares_is_mapped_with_its_declared_type(
    mapped: dict[str, str],
) -> None:
    for name, declared in FIELDS.items():
        assert mapped.get(name) == declared, f"{name}: mapped {mapped.get(name)}, FIELDS {declared}"
        # and through elasticsearch-dsl's own view of the mapping
        assert mappings.log_mapping().resolve_field(name).name == declared


def test_nothing_is_mapped_that_neither_the_app_nor_the_pipeline_declares(
    mapped: dict[str, str],
) -> None:
    assert mapped == mappings.declared_fields()


def test_every_field_the_app_emits_is_mapped_and_its_values_fit_the_type(
    emitted: list[dict[str, Any]], mapped: dict[str, str]
) -> None:
    seen = set()
    for line in emitted:
        for name, value in line.items():
            assert name in mapped, f"the app writes {name}, which the template does not map"
            fits(name, mapped[name], value)
            seen.add(name)
    # the sample covers the interesting types, not just keywords
    assert {"event.duration", "http.response.status_code", "error.stack_trace"} <= seen


def fits(name: str, es_type: str, value: Any) -> None:
    if es_type == "long":
        assert type(value) is int, (name, value)  # not a bool, not a float
    elif es_type in {"keyword", "text"}:
        assert isinstance(value, str), (name, value)
    elif es_type == "date":
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif es_type == "ip":
        ipaddress.ip_address(value)
    else:
        raise AssertionError(f"{name}: no check for type {es_type}")


def test_types_are_chosen_for_how_the_fields_are_searched(mapped: dict[str, str]) -> None:
    # prose is searched by words
    for name in ("message", "error.message", "error.stack_trace"):
        assert mapped[name] == "text"
    # numbers are compared and ranged
    for name in ("http.response.status_code", "event.duration"):
        assert mapped[name] == "long"
    assert mapped["client.ip"] == "ip"
    # identifiers and enumerations are matched exactly and aggregated
    for name in ("log.level", "event.action", "http.route", "http.request.id", "user.name"):
        assert mapped[name] == "keyword"


def test_the_search_cli_filters_exact_fields_and_searches_text_fields(
    mapped: dict[str, str],
) -> None:
    query = search.LogQuery(
        text="boom",
        levels=("error",),
        routes=("/msgs/alice",),
        statuses=("5xx",),
        user="alice",
        request_id="abc",
        actions=("internal-error",),
        surface="api",
    )
    built = json.dumps(search.build_search(query).to_dict())
    for kind in ("term", "terms", "range"):
        for clause in _clauses(json.loads(built), kind):
            for field in clause:
                assert mapped[field] in {"keyword", "long", "date", "ip"}, (kind, field)
    for field in search.TEXT_FIELDS:
        assert mapped[field] == "text"


def _clauses(node: Any, kind: str) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind and isinstance(value, dict):
                found.append(value)
            found.extend(_clauses(value, kind))
    elif isinstance(node, list):
        for item in node:
            found.extend(_clauses(item, kind))
    return found


def test_keywords_are_capped_and_bad_numbers_do_not_reject_documents(
    body: dict[str, Any],
) -> None:
    def leaves(props: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for spec in props.values():
            out.extend(leaves(spec["properties"]) if "properties" in spec else [spec])
        return out

    for spec in leaves(body["template"]["mappings"]["properties"]):
        if spec["type"] == "keyword":
            assert spec["ignore_above"] == mappings.KEYWORD_IGNORE_ABOVE
        if spec["type"] in {"long", "ip"}:
            assert spec["ignore_malformed"] is True


def test_the_template_makes_the_data_stream_logs_minitwit_default(body: dict[str, Any]) -> None:
    assert body["index_patterns"] == [mappings.INDEX_PATTERN]
    assert fnmatch.fnmatchcase(mappings.DATA_STREAM, mappings.INDEX_PATTERN)
    assert mappings.DATA_STREAM == "logs-minitwit-default"
    assert body["data_stream"] == {}
    assert body["priority"] > 100  # above Elasticsearch's built-in logs-*-* template
    template = body["template"]
    assert template["mappings"]["dynamic"] is False
    assert template["mappings"]["date_detection"] is False
    assert template["mappings"]["properties"]["@timestamp"] == {"type": "date"}
    assert template["settings"]["index.lifecycle.name"] == mappings.ILM_POLICY_NAME
    json.dumps(body)  # what the client sends


def test_the_ilm_policy_rolls_over_and_deletes_after_the_retention(body: dict[str, Any]) -> None:
    policy = mappings.ilm_policy(14)
    hot = policy["phases"]["hot"]["actions"]
    assert hot["rollover"]["max_age"] == "1d"
    assert "max_primary_shard_size" in hot["rollover"]
    assert policy["phases"]["delete"] == {"min_age": "14d", "actions": {"delete": {}}}
    with pytest.raises(ValueError, match="at least one day"):
        mappings.ilm_policy(0)


@pytest.mark.parametrize(
    ("env", "days"),
    [({}, 14), ({"LOG_RETENTION_DAYS": "30"}, 30), ({"LOG_RETENTION_DAYS": ""}, 14)],
)
def test_retention_comes_from_the_environment(env: dict[str, str], days: int) -> None:
    settings = LogStackSettings.from_env(env)
    assert settings.retention_days == days
    assert mappings.ilm_policy(settings.retention_days)["phases"]["delete"]["min_age"] == f"{days}d"


@pytest.mark.parametrize("raw", ["0", "-3", "two weeks", "1.5"])
def test_a_bad_retention_is_a_configuration_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="LOG_RETENTION_DAYS"):
        LogStackSettings.from_env({"LOG_RETENTION_DAYS": raw})


def test_grafana_and_kibana_read_the_same_data_stream() -> None:
    from app.logsearch import kibana

    assert kibana.data_view()["attributes"]["title"] == mappings.INDEX_PATTERN
    datasources = (
        Path(__file__).resolve().parent.parent / "compose/grafana/provisioning/datasources"
    )
    text = "".join(path.read_text() for path in sorted(datasources.glob("*.yml")))
    assert f"index: {mappings.INDEX_PATTERN}" in text
