"""``minitwit logs setup``: the ILM policy, index template and data stream, then Kibana.

Every step is a create-or-replace (``PUT``) or tolerates "already exists", so
running it again changes nothing but what was edited since: it is safe in a
deploy script. The Kibana objects go through the saved objects import API
with ``overwrite=true``, under their fixed ids.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticsearch import BadRequestError, Elasticsearch

from app.logsearch import mappings
from app.logsearch.client import LogStackError
from app.logsearch.settings import LogStackSettings

KIBANA_DIR = Path(__file__).resolve().parents[2] / "kibana"
KIBANA_TIMEOUT = 30.0

Say = Callable[[str], None]


def apply_elasticsearch(client: Elasticsearch, retention_days: int, say: Say) -> None:
    client.ilm.put_lifecycle(
        name=mappings.ILM_POLICY_NAME, policy=mappings.ilm_policy(retention_days)
    )
    say(
        f"ILM policy {mappings.ILM_POLICY_NAME}: roll over daily (or at 10 GB), "
        f"delete {retention_days} days after rollover"
    )
    body = mappings.index_template_body()
    client.indices.put_index_template(name=mappings.TEMPLATE_NAME, body=body)
    fields = mappings.mapped_types(body["template"]["mappings"]["properties"])
    say(
        f"index template {mappings.TEMPLATE_NAME}: {mappings.INDEX_PATTERN}, "
        f"{len(fields)} fields mapped, data streams on"
    )
    try:
        client.indices.create_data_stream(name=mappings.DATA_STREAM)
        say(f"data stream {mappings.DATA_STREAM}: created")
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        # Its current backing index keeps the mapping it was created with;
        # new fields are added to it now, the rest applies from the next rollover.
        client.indices.put_mapping(
            index=mappings.DATA_STREAM, properties=body["template"]["mappings"]["properties"]
        )
        say(f"data stream {mappings.DATA_STREAM}: already there, mapping updated")


def kibana_files(directory: Path = KIBANA_DIR) -> list[Path]:
    return sorted(directory.glob("*.ndjson"))


def _multipart(path: Path) -> tuple[bytes, str]:
    boundary = f"minitwit-{uuid.uuid4().hex}"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'.encode(),
            b"Content-Type: application/ndjson\r\n\r\n",
            path.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def import_kibana_objects(settings: LogStackSettings, path: Path) -> dict[str, Any]:
    """``POST /api/saved_objects/_import?overwrite=true`` with one NDJSON file."""
    body, content_type = _multipart(path)
    url = f"{settings.kibana_url}/api/saved_objects/_import?overwrite=true"
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 (http(s) URL from config)
    request.add_header("Content-Type", content_type)
    request.add_header("kbn-xsrf", "true")
    if settings.basic_auth:
        token = base64.b64encode(":".join(settings.basic_auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=KIBANA_TIMEOUT) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise LogStackError(
                f"Kibana at {settings.kibana_url} rejected the credentials (401): check "
                "ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD (or ELASTIC_PASSWORD)"
            ) from None
        raise LogStackError(
            f"Kibana at {settings.kibana_url} refused {path.name} ({exc.code}): "
            f"{exc.read()[:500].decode(errors='replace')}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LogStackError(
            f"cannot reach Kibana at {settings.kibana_url} ({reason}); "
            "is it running, and is KIBANA_URL right?"
        ) from None
    except ValueError:
        raise LogStackError(f"Kibana at {settings.kibana_url} did not answer with JSON") from None
    if not answer.get("success"):
        errors = json.dumps(answer.get("errors", answer))[:1000]
        raise LogStackError(f"Kibana did not import every object of {path.name}: {errors}")
    return answer


def apply_kibana(settings: LogStackSettings, say: Say, directory: Path = KIBANA_DIR) -> None:
    files = kibana_files(directory)
    if not files:
        raise LogStackError(f"no Kibana saved objects (*.ndjson) in {directory}")
    for path in files:
        answer = import_kibana_objects(settings, path)
        say(f"Kibana: imported {answer.get('successCount', 0)} saved objects from {path.name}")
