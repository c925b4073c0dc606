"""Read the Compose files as Docker Compose would, without a Docker engine.

What ``docker compose config`` does, for the parts the tests look at: read
``.env``-style files, interpolate ``${VAR}``, ``${VAR:-default}``,
``${VAR:?error}`` (and the other forms of the Compose specification), and
merge a file over another by the specification's merge rules. The tests then
look at the project each variant gives: development (docker-compose.yml and
docker-compose.override.yml, what plain ``docker compose up`` reads) and
production (docker-compose.yml and docker-compose.prod.yml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"
BASE = COMPOSE_DIR / "docker-compose.yml"
DEVELOPMENT = COMPOSE_DIR / "docker-compose.override.yml"
PRODUCTION = COMPOSE_DIR / "docker-compose.prod.yml"
COMPOSE_FILES = (BASE, DEVELOPMENT, PRODUCTION)
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
VARIANTS = {"development": (BASE, DEVELOPMENT), "production": (BASE, PRODUCTION)}

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_REFERENCE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)
# Lists that Compose merges (an override adds entries); any other list is replaced.
_UNION_KEYS = {"ports", "expose", "secrets", "configs", "tmpfs", "dns", "extra_hosts", "volumes"}
_MAPPING_KEYS = {"environment", "labels"}


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` (or ``${VAR?message}``) whose variable is not set."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def read_env_file(path: Path) -> dict[str, str]:
    """A ``.env`` file as Compose reads it: NAME=value lines, quotes removed, # comments."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            raise ValueError(f"{path}: not a NAME=value line: {line!r}")
        value = match[2]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[match[1]] = value
    return values


def _substitute(text: str, env: dict[str, str], missing: list[MissingVariable]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        if match[3]:
            return env.get(match[3], "")
        braced = _BRACED.fullmatch(match[2])
        if braced is None or "${" in match[2]:
            raise ValueError(f"unsupported interpolation: {match[0]!r}")
        name, operator, argument = braced[1], braced[2], braced[3] or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and operator.startswith(":"))
        if operator in {":-", "-"}:
            return argument if unset_or_empty else str(value)
        if operator in {":?", "?"}:
            if unset_or_empty:
                missing.append(MissingVariable(name, argument or "required"))
                return ""
            return str(value)
        if operator in {":+", "+"}:
            return "" if unset_or_empty else argument
        return value or ""

    return _REFERENCE.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """``node`` with every string interpolated; raises the first MissingVariable."""
    missing: list[MissingVariable] = []

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _substitute(value, env, missing)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    result = walk(node)
    if missing:
        raise missing[0]
    return result


def missing_variables(node: Any, env: dict[str, str]) -> set[str]:
    """The names of every required variable ``env`` does not set."""
    missing: list[MissingVariable] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            _substitute(value, env, missing)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(node)
    return {problem.name for problem in missing}


def referenced_variables(text: str) -> set[str]:
    """The variables a Compose file's text interpolates (comments included: they show usage)."""
    names = set()
    for match in _REFERENCE.finditer(text):
        if match[3]:
            names.add(match[3])
        elif match[2] and (braced := _BRACED.fullmatch(match[2])):
            names.add(braced[1])
    return names


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def _as_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    mapping: dict[str, Any] = {}
    for item in value or []:
        name, _, setting = str(item).partition("=")
        mapping[name] = setting
    return mapping


def _volume_target(volume: Any) -> str:
    if isinstance(volume, dict):
        return str(volume["target"])
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def merge(base: Any, override: Any, key: str = "") -> Any:
    """``override`` merged over ``base`` by the Compose specification's merge rules."""
    if key in _MAPPING_KEYS:
        return {**_as_mapping(base), **_as_mapping(override)}
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in _UNION_KEYS:
        if key == "volumes":
            targets = {_volume_target(volume) for volume in override}
            return [v for v in base if _volume_target(v) not in targets] + override
        return base + [item for item in override if item not in base]
    return override


def project(files: tuple[Path, ...], env: dict[str, str]) -> dict[str, Any]:
    """The interpolated, merged model of ``files``, as ``docker compose config`` builds it."""
    merged: dict[str, Any] = {}
    for path in files:
        merged = merge(merged, interpolate(load(path), env))
    return merged


@dataclass(frozen=True)
class Port:
    host_ip: str  # "" for every interface
    published: str  # "" when Docker picks the host port
    target: str


def ports(service: dict[str, Any]) -> list[Port]:
    """The published ports of a service (short or long syntax)."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append(
                Port(
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry["target"]),
                )
            )
            continue
        parts = str(entry).split(":")
        if len(parts) == 3:
            found.append(Port(parts[0], parts[1], parts[2].split("/")[0]))
        elif len(parts) == 2:
            found.append(Port("", parts[0], parts[1].split("/")[0]))
        else:
            found.append(Port("", "", parts[0].split("/")[0]))
    return found


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    bind: bool  # a host path (else a named volume)


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source = str(volume.get("source", ""))
            found.append(
                Mount(
                    source,
                    str(volume["target"]),
                    bool(volume.get("read_only")),
                    volume.get("type") == "bind",
                )
            )
            continue
        parts = str(volume).split(":")
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        bind = source.startswith((".", "/", "~"))
        found.append(Mount(source, target, "ro" in options, bind))
    return found


def exposed(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split("/")[0]) for port in service.get("expose", [])}
