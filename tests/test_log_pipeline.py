"""The log pipeline as versioned files: Logstash's pipeline, its sample events, Filebeat.

Without Logstash here, the pipeline is parsed (logstash-pipeline-parser) and
read as a tree: every field it tests or touches must be a nested reference to
a field the app writes, secrets must be removed, successful health checks
dropped, and the output must be the data stream the index template is for.
The sample events in logstash/tests/ (logstash-filter-verifier test cases,
run for real by a job with Logstash) are checked for what can be checked
without it: the inputs are what the app writes today, each expected document
keeps every app field nested as the template maps it and nothing secret, and
both inputs (Filebeat and python-logstash) expect the same document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from logstash_pipeline_parser import Pipeline

from app.config import Settings
from app.logsearch import mappings
from app.observability.logs import FIELDS, SENSITIVE_NAMES
from tests.logdocs import app_log_lines, flatten

ROOT = Path(__file__).resolve().parent.parent
LOGSTASH = ROOT / "logstash"
PIPELINES = sorted((LOGSTASH / "pipeline").glob("*.conf"))
TEST_CASES = sorted((LOGSTASH / "tests").glob("*.yml"))
FILEBEAT = ROOT / "filebeat" / "filebeat.yml"

SELECTOR = re.compile(r"^(\[[^\[\]]+\])+$")
# What Filebeat and Logstash add that the pipeline removes (the same document both ways).
SHIPPER_FIELDS = ("@version", "agent", "input", "host", "stream", "log.file", "log.offset")
SHIPPER_FIELDS += ("event.original", "docker", "container.labels", "container.runtime")
CONTAINER_FIELDS = {"container.id", "container.name", "container.image.name"}
LFV_KEYS = {"input_plugin", "ignore", "fields", "codec", "testcases", "export_metadata"}
LFV_CASE_KEYS = {"description", "input", "fields", "expected"}


# --- reading the pipeline --------------------------------------------------------------


def parse(path: Path) -> list[Any]:
    tree: list[Any] = Pipeline.from_file(path).parse()
    return tree


def is_plugin(node: Any) -> bool:
    return (
        isinstance(node, list)
        and len(node) == 2
        and isinstance(node[0], str)
        and node[0] not in {"if", "else if", "else"}
        and isinstance(node[1], list)
        and all(isinstance(attr, list) and len(attr) == 2 for attr in node[1])
    )


def value(raw: list[Any]) -> Any:
    """An attribute's parsed value: a scalar, a list, or (for a hash) a dict."""
    inner = raw[0] if len(raw) == 1 else raw
    if (
        isinstance(inner, list)
        and inner
        and all(isinstance(entry, list) and len(entry) == 2 for entry in inner)
        and all(isinstance(entry[0], str) and isinstance(entry[1], list) for entry in inner)
    ):
        return {key: value(val) for key, val in inner}
    return inner


def options(plugin: list[Any]) -> dict[str, Any]:
    return {name: value(raw) for name, raw in plugin[1]}


def branches(items: list[Any]) -> Iterator[tuple[list[Any], list[Any]]]:
    """(conditions, body) for every if / else if / else in ``items``, nested ones too."""
    for node in items:
        if isinstance(node, list) and node and node[0] in {"if", "else if"}:
            conditions, body = node[1][:-1], node[1][-1][0]
            yield conditions, body
            yield from branches(body)
        elif isinstance(node, list) and node and node[0] == "else":
            yield [], node[1]
            yield from branches(node[1])


def plugins(items: list[Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for node in items:
        if is_plugin(node):
            yield node[0], options(node)
        elif isinstance(node, list) and node and node[0] in {"if", "else if"}:
            yield from plugins(node[1][-1][0])
        elif isinstance(node, list) and node and node[0] == "else":
            yield from plugins(node[1])


def sections(tree: list[Any]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for name, items in tree:
        found.setdefault(name, []).extend(items)
    return found


def selectors(node: Any) -> Iterator[str]:
    if isinstance(node, str) and SELECTOR.match(node):
        yield node
    elif isinstance(node, list):
        for child in node:
            yield from selectors(child)


def segments(ref: str) -> list[str]:
    return re.findall(r"\[([^\[\]]+)\]", ref)


@pytest.fixture(scope="module")
def tree() -> list[Any]:
    assert len(PIPELINES) == 1, PIPELINES
    return parse(PIPELINES[0])


@pytest.fixture(scope="module")
def emitted_raw(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Lines the real apps wrote, as written (dotted top-level keys and all)."""
    return app_log_lines(tmp_path_factory.mktemp("pipeline"))


def all_plugins(tree: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (section, name, opts)
        for section, items in sections(tree).items()
        for name, opts in plugins(items)
    ]


# --- syntax and structure --------------------------------------------------------------


@pytest.mark.parametrize("path", PIPELINES, ids=lambda path: path.name)
def test_the_pipeline_parses(path: Path) -> None:
    assert {section for section, _ in parse(path)} == {"input", "filter", "output"}


def test_every_plugin_has_a_unique_id(tree: list[Any]) -> None:
    """logstash-filter-verifier's daemon mode finds inputs (and mocks plugins) by id."""
    ids = [opts.get("id") for _, _, opts in all_plugins(tree)]
    assert all(ids), [entry for entry in all_plugins(tree) if not entry[2].get("id")]
    assert len(ids) == len(set(ids))


def test_pipelines_yml_runs_this_pipeline() -> None:
    (entry,) = yaml.safe_load((LOGSTASH / "config" / "pipelines.yml").read_text())
    assert entry["pipeline.id"] == "minitwit"
    assert (LOGSTASH / entry["path.config"]).resolve() == PIPELINES[0].resolve()


def test_inputs_are_beats_for_filebeat_and_json_lines_tcp_for_python_logstash(
    tree: list[Any],
) -> None:
    inputs = dict(plugins(sections(tree)["input"]))
    assert set(inputs) == {"beats", "tcp"}
    assert inputs["tcp"]["codec"] == "json_lines"
    assert inputs["tcp"]["port"] == Settings().logstash_port  # LOGSTASH_PORT's default
    beats_port = inputs["beats"]["port"]
    (host,) = yaml.safe_load(FILEBEAT.read_text())["output.logstash"]["hosts"]
    assert host.rstrip("}").endswith(f":{beats_port}"), host


def test_the_output_is_the_data_stream_the_index_template_is_for(tree: list[Any]) -> None:
    (output,) = [opts for name, opts in plugins(sections(tree)["output"])]
    assert output["data_stream"] == "true"
    name = "-".join(output[f"data_stream_{part}"] for part in ("type", "dataset", "namespace"))
    assert name == mappings.DATA_STREAM
    assert output["manage_template"] is False  # `minitwit logs setup` owns the template
    assert re.fullmatch(r"\$\{[A-Z_]+\}", output["password"]), "a password in the file"


# --- field references ------------------------------------------------------------------


def test_conditions_test_nested_fields_the_app_writes(tree: list[Any]) -> None:
    tested = set()
    for conditions, _ in branches(sections(tree)["filter"]):
        for ref in selectors(conditions):
            parts = segments(ref)
            if parts[0] == "@metadata":
                continue
            for part in parts:
                assert "." not in part, f"{ref} names a flat field, not a nested one"
            tested.add(".".join(parts))
    assert tested, "no conditions found"
    assert tested <= set(FIELDS), (
        f"conditions on fields the app does not write: {tested - set(FIELDS)}"
    )


def field_options(tree: list[Any]) -> Iterator[tuple[str, str]]:
    """(option, reference) for every field reference a filter option takes."""
    for _section, _name, opts in all_plugins(tree):
        for option in ("remove_field", "rename", "add_field", "source", "target"):
            if option not in opts:
                continue
            given = opts[option]
            refs = given if isinstance(given, list) else [given]
            if isinstance(given, dict):
                refs = list(given) + (list(given.values()) if option == "rename" else [])
            for ref in refs:
                yield option, ref


def test_filter_options_use_nested_references(tree: list[Any]) -> None:
    renamed = dict(next(opts["rename"] for _, _, opts in all_plugins(tree) if "rename" in opts))
    for option, ref in field_options(tree):
        if option == "source":
            continue  # a bare field name (the json filter's "message")
        assert SELECTOR.match(ref), f"{option} {ref!r} is not a [field][reference]"
        if ref in renamed:
            continue  # the flat dotted keys the pipeline nests
        for part in segments(ref):
            assert "." not in part, f"{option} {ref!r} names a flat field, not a nested one"


def test_the_flat_dotted_keys_the_app_writes_are_nested(
    tree: list[Any], emitted_raw: list[dict[str, Any]]
) -> None:
    renamed = next(opts["rename"] for _, _, opts in all_plugins(tree) if "rename" in opts)
    dotted = {key for line in emitted_raw for key in line if "." in key and key[0] != "@"}
    assert dotted >= {"log.level", "ecs.version"}  # what ecs-logging does today
    for key in dotted:
        assert renamed.get(f"[{key}]") == "".join(f"[{part}]" for part in key.split(".")), key
    for source, target in renamed.items():
        assert ".".join(segments(target)) in FIELDS, target
        assert segments(source) == [".".join(segments(target))], (source, target)


def test_fields_the_pipeline_adds_are_mapped(tree: list[Any]) -> None:
    declared = mappings.declared_fields()
    for option, ref in field_options(tree):
        if option == "add_field" and segments(ref)[0] != "@metadata":
            assert ".".join(segments(ref)) in declared, ref


def test_every_sensitive_name_is_removed(tree: list[Any]) -> None:
    removed = {ref for _, _, opts in all_plugins(tree) for ref in (opts.get("remove_field") or [])}
    for name in SENSITIVE_NAMES:
        assert f"[{name}]" in removed, f"[{name}] is not removed"
    scrub = next(
        opts
        for name, opts in plugins(sections(tree)["filter"])
        if opts.get("id") == "minitwit_scrub_sensitive_names"
    )
    listed = set(re.findall(r"'([^']+)'", scrub["init"]))
    assert listed >= SENSITIVE_NAMES, SENSITIVE_NAMES - listed
    assert "event.remove" in scrub["code"]


def test_successful_health_checks_and_scrapes_are_dropped(tree: list[Any]) -> None:
    for conditions, body in branches(sections(tree)["filter"]):
        text = json.dumps(conditions)
        if "[http][route]" in text and "/health" in text and "/metrics" in text:
            assert [name for name, _ in plugins(body)] == ["drop"]
            assert '["[http][response][status_code]", "<", 400]' in text
            return
    raise AssertionError("no condition drops successful /health and /metrics requests")


# --- the sample events -----------------------------------------------------------------


def load_cases(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def case_file(kind: str) -> dict[str, Any]:
    return load_cases(LOGSTASH / "tests" / f"{kind}.yml")


def input_events(case: dict[str, Any], globals_: dict[str, Any]) -> list[dict[str, Any]]:
    if "input" in case:
        return [json.loads(line) for line in case["input"]]
    return [{**globals_, **case["fields"]}]


def is_dropped(flat: dict[str, Any]) -> bool:
    """What the pipeline is meant to drop: successful health checks and scrapes."""
    return (
        flat.get("event.dataset") == "minitwit.access"
        and flat.get("http.route") in {"/health", "/metrics"}
        and flat.get("http.response.status_code", 500) < 400
    )


def is_sensitive(field: str) -> bool:
    return any(part.lower() in SENSITIVE_NAMES for part in field.split("."))


def becomes(event: dict[str, Any]) -> dict[str, Any]:
    """The fields an input event's document keeps: the app's, none secret, no shipper's.
    An event Filebeat did not decode is decoded first; a plain line is marked."""
    if "service" not in event and str(event.get("message", "")).lstrip().startswith("{"):
        decoded = json.loads(event["message"])
        event = {**{k: v for k, v in event.items() if k != "message"}, **decoded}
    flat = {
        field: value
        for field, value in flatten(event).items()
        if not is_sensitive(field)
        and not any(field == s or field.startswith(f"{s}.") for s in SHIPPER_FIELDS)
    }
    if "service.name" not in flat:
        flat["event.dataset"] = "minitwit.stdout"
    return flat


def leaves(doc: dict[str, Any]) -> dict[str, Any]:
    """Flattened, without the empty objects a removal can leave behind."""
    return {field: value for field, value in flatten(doc).items() if value != {}}


@pytest.mark.parametrize("path", TEST_CASES, ids=lambda path: path.name)
def test_sample_files_are_logstash_filter_verifier_test_cases(path: Path, tree: list[Any]) -> None:
    doc = load_cases(path)
    assert set(doc) <= LFV_KEYS
    input_ids = {opts["id"] for _, opts in plugins(sections(tree)["input"])}
    assert doc["input_plugin"] in input_ids
    assert doc["testcases"]
    for case in doc["testcases"]:
        assert set(case) <= LFV_CASE_KEYS
        assert case["description"]
        assert isinstance(case["expected"], list)
        assert ("input" in case) != ("fields" in case)
        for line in case.get("input", []):
            assert isinstance(json.loads(line), dict), line  # json_lines


def test_both_inputs_have_samples() -> None:
    assert {case_file(kind)["input_plugin"] for kind in ("tcp", "beats")} == {
        "minitwit_tcp",
        "minitwit_beats",
    }


@pytest.mark.parametrize("kind", ["tcp", "beats"])
def test_sample_inputs_are_what_the_app_writes(
    kind: str, emitted_raw: list[dict[str, Any]]
) -> None:
    doc = case_file(kind)
    real = [flatten(line) for line in emitted_raw]
    # Fields an event of the same kind may or may not carry (a client, a known user);
    # @timestamp is Filebeat's to set on the beats path.
    optional = {"client.ip", "user.name", "user_agent.original", "labels.app", "event.outcome"}
    optional |= {"@timestamp"} if kind == "beats" else set()
    for case in doc["testcases"]:
        for event in input_events(case, doc.get("fields", {})):
            flat = set(becomes(event)) - CONTAINER_FIELDS
            if "service.name" not in flat:
                continue  # the one sample that is not the app's JSON
            assert flat <= set(FIELDS), case["description"]
            action = becomes(event).get("event.action")
            twins = [set(line) for line in real if line.get("event.action") == action]
            assert twins, f"{case['description']}: the app writes no {action} event"
            assert any(twin ^ flat <= optional for twin in twins), (
                f"{case['description']}: not the fields the app writes for {action}"
            )
            if kind == "tcp":
                dotted = {key for key in event if "." in key and key[0] != "@"}
                assert dotted == {key for key in emitted_raw[0] if "." in key and key[0] != "@"}


@pytest.mark.parametrize("kind", ["tcp", "beats"])
def test_expected_documents_keep_every_app_field_nested_and_nothing_secret(kind: str) -> None:
    doc = case_file(kind)
    declared = mappings.declared_fields()
    ignored = set(doc.get("ignore", []))
    for case in doc["testcases"]:
        inputs = input_events(case, doc.get("fields", {}))
        kept = [event for event in inputs if not is_dropped(becomes(event))]
        assert len(case["expected"]) == len(kept), case["description"]
        for event, expected in zip(kept, case["expected"], strict=True):
            assert_nested(expected, case["description"])
            got = leaves(expected)
            assert set(got) <= set(declared), set(got) - set(declared)
            assert not [field for field in flatten(expected) if is_sensitive(field)]
            want = {k: v for k, v in becomes(event).items() if k not in ignored}
            assert got == want, case["description"]


def assert_nested(doc: dict[str, Any], where: str) -> None:
    for key, inner in doc.items():
        assert key == "@timestamp" or "." not in key, f"{where}: flat key {key!r}"
        if isinstance(inner, dict):
            assert_nested(inner, where)


def test_both_inputs_make_the_same_document() -> None:
    tcp = {case["description"]: case for case in case_file("tcp")["testcases"]}
    compared = 0
    for case in case_file("beats")["testcases"]:
        twin = tcp.get(case["description"])
        if twin is None:
            continue
        for from_beats, from_tcp in zip(case["expected"], twin["expected"], strict=True):
            beats_doc = {
                k: v for k, v in leaves(from_beats).items() if not k.startswith("container.")
            }
            tcp_doc = {k: v for k, v in leaves(from_tcp).items() if k != "@timestamp"}
            assert beats_doc == tcp_doc, case["description"]
            assert set(leaves(from_beats)) - set(beats_doc) == CONTAINER_FIELDS
            compared += 1
    assert compared >= 8


def test_the_samples_cover_what_the_pipeline_does() -> None:
    descriptions = " | ".join(
        case["description"] for kind in ("tcp", "beats") for case in case_file(kind)["testcases"]
    )
    for topic in ("secret", "health check", "did not decode", "not write as JSON", "stack trace"):
        assert topic in descriptions, topic


# --- Filebeat --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filebeat() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(FILEBEAT.read_text())
    return config


def test_filebeat_discovers_the_app_containers_and_reads_their_json_logs(
    filebeat: dict[str, Any],
) -> None:
    (provider,) = filebeat["filebeat.autodiscover"]["providers"]
    assert provider["type"] == "docker"
    (template,) = provider["templates"]
    assert template["condition"]  # only the app's containers
    (config,) = template["config"]
    assert config["type"] in {"filestream", "container"}
    (path,) = config["paths"]
    assert path.startswith("/var/lib/docker/containers/${data.docker.container.id}/")
    if config["type"] == "filestream":
        assert config["id"].endswith("${data.docker.container.id}")  # one id per container
        assert {"container": {"stream": "all", "format": "docker"}} in config["parsers"]


def test_filebeat_decodes_the_json_into_top_level_nested_fields(filebeat: dict[str, Any]) -> None:
    (provider,) = filebeat["filebeat.autodiscover"]["providers"]
    processors = provider["templates"][0]["config"][0]["processors"]
    decode = next(p["decode_json_fields"] for p in processors if "decode_json_fields" in p)
    assert decode["fields"] == ["message"]
    assert decode["target"] == ""  # the app's fields at the top, as python-logstash sends them
    assert decode["expand_keys"] is True  # "log.level" -> log.level
    assert decode["overwrite_keys"] is True  # the app's message, @timestamp, ecs.version win


def test_filebeat_ships_to_logstash_only(filebeat: dict[str, Any]) -> None:
    outputs = [key for key in filebeat if key.startswith("output.")]
    assert outputs == ["output.logstash"]
