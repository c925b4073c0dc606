"""terraform/: the DigitalOcean deployment, checked without a cloud.

Providers cannot be downloaded here, so ``terraform validate`` runs in GitHub
Actions. Here every ``.tf`` file is parsed with python-hcl2 and the invariants
are asserted on the parsed configuration: the firewall opens SSH to the admin
addresses only and HTTP/HTTPS to everyone and nothing else; the database
admits the app droplets only; secrets are sensitive variables that no
committed file sets. What needs no provider runs in the real ``terraform``:
``fmt -check``, the variables' validation blocks (a scratch module holding
variables.tf, planned with good and bad values), and the cloud-init template,
rendered by ``templatefile`` exactly as main.tf calls it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TF = ROOT / "terraform"
TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not on PATH")
EVERYONE = ["0.0.0.0/0", "::/0"]
SECRET_NAME = re.compile(r"(secret|password|token)")


def unquote(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes on strings and marks blocks: strip both."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    return value


@cache
def parsed() -> dict[str, dict[str, Any]]:
    return {p.name: unquote(hcl2.loads(p.read_text())) for p in sorted(TF.glob("*.tf"))}


def blocks(kind: str) -> list[dict[str, Any]]:
    return [block for doc in parsed().values() for block in doc.get(kind, [])]


def resources(rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in blocks("resource"):
        for name, body in block.get(rtype, {}).items():
            found[name] = body
    return found


def variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks("variable") for name, body in block.items()}


def outputs() -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks("output") for name, body in block.items()}


def locals_() -> dict[str, Any]:
    return {k: v for block in blocks("locals") for k, v in block.items()}


# --- structure ------------------------------------------------------------------------------


def test_every_file_parses_and_the_layout_is_complete() -> None:
    assert set(parsed()) >= {
        "versions.tf",
        "variables.tf",
        "main.tf",
        "firewall.tf",
        "database.tf",
        "spaces.tf",
        "outputs.tf",
    }
    assert (TF / "templates" / "cloud-init.yaml.tftpl").is_file()
    assert (TF / "README.md").is_file()


def test_the_provider_is_pinned() -> None:
    (terraform,) = blocks("terraform")
    (providers,) = terraform["required_providers"]
    assert providers["digitalocean"]["source"] == "digitalocean/digitalocean"
    assert re.fullmatch(r"~> 2\.\d+", providers["digitalocean"]["version"])
    assert terraform["required_version"].startswith(">=")
    # Credentials come from the environment, not from the configuration.
    (provider,) = blocks("provider")
    assert provider["digitalocean"] == {}


def test_two_droplets_blue_and_green_in_the_vpc() -> None:
    (droplet,) = resources("digitalocean_droplet").values()
    assert droplet["for_each"] == "${local.sides}"
    assert locals_()["sides"] == '${toset(["blue", "green"])}'
    assert droplet["vpc_uuid"] == "${digitalocean_vpc.main.id}"
    assert "${digitalocean_tag.app.id}" in droplet["tags"]
    assert "cloud-init.yaml.tftpl" in droplet["user_data"]
    # keepalived and blue-green.sh move the reserved IPs: Terraform must not move them back.
    (lifecycle,) = droplet["lifecycle"]
    assert "user_data" in lifecycle["ignore_changes"]
    assert "db_connections_needed" in lifecycle["precondition"][0]["condition"]


def test_two_reserved_ips_that_terraform_never_assigns() -> None:
    ips = resources("digitalocean_reserved_ip")
    assert set(ips) == {"public", "standby"}
    for body in ips.values():
        assert "droplet_id" not in body
    assert resources("digitalocean_reserved_ip_assignment") == {}
    assert resources("digitalocean_floating_ip") == {}


# --- the firewall ---------------------------------------------------------------------------


def test_firewall_inbound_is_ssh_from_admins_and_http_https_from_everyone_only() -> None:
    firewalls = resources("digitalocean_firewall")
    assert set(firewalls) == {"app"}
    firewall = firewalls["app"]
    assert firewall["tags"] == ["${digitalocean_tag.app.id}"]
    inbound = sorted(
        (rule["protocol"], rule.get("port_range"), json.dumps(rule.get("source_addresses")))
        for rule in firewall["inbound_rule"]
    )
    assert inbound == [
        ("tcp", "22", json.dumps("${var.admin_cidrs}")),
        ("tcp", "443", json.dumps(EVERYONE)),
        ("tcp", "80", json.dumps(EVERYONE)),
    ]
    for rule in firewall["inbound_rule"]:
        assert set(rule) == {"protocol", "port_range", "source_addresses"}, rule


def test_firewall_outbound_reaches_postgres_only_inside_the_vpc() -> None:
    outbound = resources("digitalocean_firewall")["app"]["outbound_rule"]
    postgres = [rule for rule in outbound if rule.get("port_range") == "25060"]
    assert postgres == [
        {
            "protocol": "tcp",
            "port_range": "25060",
            "destination_addresses": ["${var.vpc_ip_range}"],
        }
    ]
    assert all(rule.get("port_range") != "1-65535" for rule in outbound)


def test_admin_cidrs_cannot_be_the_whole_internet() -> None:
    conditions = [v["condition"] for v in variables()["admin_cidrs"]["validation"]]
    assert any('"0.0.0.0/0"' in c and '"::/0"' in c for c in conditions)


# --- the database ---------------------------------------------------------------------------


def test_database_is_in_the_vpc_with_a_standby_option() -> None:
    (cluster,) = resources("digitalocean_database_cluster").values()
    assert cluster["engine"] == "pg"
    assert cluster["private_network_uuid"] == "${digitalocean_vpc.main.id}"
    assert cluster["node_count"] == "${1 + var.db_standby_nodes}"
    assert "db_standby_nodes" in variables()


def test_database_admits_the_app_droplets_only() -> None:
    (firewall,) = resources("digitalocean_database_firewall").values()
    assert firewall["cluster_id"] == "${digitalocean_database_cluster.main.id}"
    assert firewall["rule"] == [{"type": "tag", "value": "${digitalocean_tag.app.name}"}]
    # The tag the database trusts is the droplets' tag.
    (droplet,) = resources("digitalocean_droplet").values()
    assert "${digitalocean_tag.app.id}" in droplet["tags"]


def test_the_app_reaches_the_database_over_the_private_network() -> None:
    url = locals_()["database_url"]
    assert "digitalocean_database_cluster.main.private_host" in url
    assert ".main.host" not in url
    assert "urlencode(digitalocean_database_user.app.password)" in url
    assert outputs()["database_url"]["sensitive"] is True
    assert "private_host" in outputs()["database_host"]["value"]
    for output in outputs().values():
        value = json.dumps(output["value"])
        assert "main.uri" not in value
        assert "main.host}" not in value


# --- the bucket -----------------------------------------------------------------------------


def test_backup_bucket_is_private_and_expires_old_backups() -> None:
    (bucket,) = resources("digitalocean_spaces_bucket").values()
    assert bucket["acl"] == "private"
    (rule,) = bucket["lifecycle_rule"]
    assert rule["enabled"] is True
    assert "var.backup_retention_days" in rule["expiration"][0]["days"]
    (key,) = resources("digitalocean_spaces_key").values()
    assert key["grant"] == [
        {"bucket": "${digitalocean_spaces_bucket.backups.name}", "permission": "readwrite"}
    ]


# --- variables, secrets, outputs ------------------------------------------------------------


def test_every_variable_has_a_description_and_a_type() -> None:
    for name, body in variables().items():
        assert len(body.get("description", "")) > 20, name
        assert body.get("type"), name


def test_secret_variables_are_sensitive_and_have_no_real_default() -> None:
    secrets = {n for n in variables() if SECRET_NAME.search(n)}
    assert secrets >= {
        "minitwit_secret_key",
        "simulator_password",
        "failover_do_token",
        "registry_password",
    }
    for name in secrets:
        body = variables()[name]
        assert body.get("sensitive") is True, name
        assert body.get("default", "") == "", name


def test_key_variables_are_validated() -> None:
    for name in (
        "project_name",
        "region",
        "admin_cidrs",
        "ssh_key_fingerprints",
        "app_image",
        "app_replicas",
        "postgres_version",
        "db_standby_nodes",
        "backup_bucket_name",
        "backup_retention_days",
        "minitwit_secret_key",
        "failover_do_token",
    ):
        validations = variables()[name].get("validation", [])
        assert validations, name
        for validation in validations:
            assert validation["condition"].startswith("${"), name
            assert validation["error_message"], name


def test_outputs_exist_with_descriptions() -> None:
    assert set(outputs()) >= {
        "public_ip",
        "standby_ip",
        "blue_green_env",
        "droplets",
        "database_host",
        "database_url",
        "backup_bucket",
        "backup_s3_endpoint",
    }
    for name, body in outputs().items():
        assert body.get("description"), name
    assert "PUBLIC_IP=" in outputs()["blue_green_env"]["value"]
    assert "STANDBY_IP=" in outputs()["blue_green_env"]["value"]


def test_the_example_tfvars_sets_no_secret() -> None:
    example = unquote(hcl2.loads((TF / "terraform.tfvars.example").read_text()))
    sensitive = {n for n, body in variables().items() if body.get("sensitive")}
    assert set(example) & sensitive == set()
    assert set(example) <= set(variables())


def test_no_state_or_variable_files_are_committed() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "terraform"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "terraform/terraform.tfvars.example" in listed
    for path in listed:
        name = Path(path).name
        assert ".tfstate" not in name, path
        assert not name.endswith((".tfvars", ".tfvars.json", ".tfplan")), path
        assert "/.terraform/" not in f"/{path}", path
    for would_be in ("terraform.tfvars", "prod.tfvars", "terraform.tfstate", ".terraform/x"):
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", f"terraform/{would_be}"], cwd=ROOT
        )
        assert ignored.returncode == 0, f"terraform/{would_be} is not gitignored"


# --- the real terraform: fmt, validation blocks, the cloud-init template --------------------


def terraform(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",  # no version check over the network
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_CLI_CONFIG_FILE": os.devnull,
    }
    return subprocess.run(
        [TERRAFORM, *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True
    )


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    result = terraform(["fmt", "-check", "-recursive", "-diff", str(TF)], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


GOOD = {
    "ssh_key_fingerprints": ["aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"],
    "admin_cidrs": ["203.0.113.7/32", "2001:db8::/48"],
    "git_repository_url": "https://github.com/example/minitwit.git",
    "app_image": "ghcr.io/example/minitwit",
    "backup_bucket_name": "minitwit-backups-test",
    "minitwit_secret_key": "s" * 40,
    "simulator_password": "simulator-password",
    "failover_do_token": "dop_v1_" + "0" * 64,
}


@pytest.fixture(scope="module")
def variables_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """variables.tf alone, initialised: it needs no provider, so plan runs offline."""
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    module = tmp_path_factory.mktemp("tf-variables")
    shutil.copy(TF / "variables.tf", module / "variables.tf")
    result = terraform(["init", "-backend=false"], module)
    assert result.returncode == 0, result.stderr
    return module


def plan(module: Path, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (module / "test.auto.tfvars.json").write_text(json.dumps(values))
    return terraform(["plan", "-lock=false", "-refresh=false"], module)


def test_good_values_pass_validation(variables_module: Path) -> None:
    result = plan(variables_module, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("admin_cidrs", ["0.0.0.0/0"], "must not open SSH to the whole internet"),
        ("admin_cidrs", ["203.0.113.7/32", "::/0"], "must not open SSH to the whole internet"),
        ("admin_cidrs", [], "at least one CIDR"),
        ("admin_cidrs", ["not-a-cidr"], "at least one CIDR"),
        ("region", "mars1", "region must be"),
        ("minitwit_secret_key", "short", "at least 32 characters"),
        ("app_replicas", 0, "app_replicas must be"),
        ("app_replicas", 2.5, "app_replicas must be"),
        ("db_standby_nodes", 3, "db_standby_nodes must be"),
        ("postgres_version", "9.6", "postgres_version must be"),
        ("backup_retention_days", 0, "backup_retention_days must be"),
        ("backup_bucket_name", "Bad_Bucket", "backup_bucket_name"),
        ("git_repository_url", "https://user:pw@github.com/x", "without credentials"),
        ("app_image", "ghcr.io/x/minitwit:latest", "without a tag"),
        ("vpc_ip_range", "8.8.8.0/24", "private IPv4 CIDR"),
        ("ssh_key_fingerprints", ["nope"], "ssh_key_fingerprints"),
    ],
)
def test_bad_values_are_refused(
    variables_module: Path, name: str, value: Any, message: str
) -> None:
    result = plan(variables_module, {**GOOD, name: value})
    assert result.returncode != 0
    assert "Invalid value for variable" in result.stderr
    assert message in " ".join(result.stderr.split())


TEMPLATE_VALUES: dict[str, Any] = {
    "droplet_tag": "minitwit-app",
    "public_ip": "198.51.100.10",
    "standby_ip": "198.51.100.20",
    "git_repository_url": "https://github.com/example/minitwit.git",
    "git_ref": "main",
    "app_image": "ghcr.io/example/minitwit",
    "app_image_tag": "1.0.0",
    "app_replicas": 3,
    "app_workers": 1,
    "db_pool_size": 4,
    "secure_cookies": False,
    "database_url": "postgres://minitwit:DB-PASSWORD-SECRET@private-db:25060/minitwit",
    "database_name": "minitwit",
    "database_user": "minitwit",
    "db_ca_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n",
    "postgres_version": "16",
    "minitwit_secret_key": "SESSION-KEY-SECRET-" + "x" * 20,
    "simulator_username": "simulator",
    "simulator_password": "SIMULATOR-PASSWORD-SECRET",
    "failover_do_token": "DO-TOKEN-SECRET",
    "registry_username": "robot",
    "registry_password": "REGISTRY-PASSWORD-SECRET",
    "backup_dest": "s3://minitwit-backups/postgres",
    "backup_s3_endpoint": "https://fra1.digitaloceanspaces.com",
    "backup_access_key": "SPACES-ACCESS-KEY",
    "backup_secret_key": "SPACES-SECRET-KEY-SECRET",
    "backup_retention_days": 14,
    "backup_schedule": "*-*-* 03:17:00 UTC",
}
SECRETS = [v for v in TEMPLATE_VALUES.values() if isinstance(v, str) and "SECRET" in v]


@pytest.fixture(scope="module")
def cloud_init(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The cloud-config each side gets, rendered by Terraform's templatefile."""
    if TERRAFORM is None:
        pytest.skip("terraform is not on PATH")
    module = tmp_path_factory.mktemp("tf-cloud-init")
    template = TF / "templates" / "cloud-init.yaml.tftpl"
    sides = {
        "blue": {
            "side": "blue",
            "preferred": True,
            "db_admin_url": "postgres://doadmin:ADMIN-SECRET@db/defaultdb",
        },
        "green": {"side": "green", "preferred": False, "db_admin_url": ""},
    }
    body = "".join(
        f'output "{side}" {{\n  value = templatefile("{template}", '
        f"merge(jsondecode({json.dumps(json.dumps(TEMPLATE_VALUES))}), "
        f"jsondecode({json.dumps(json.dumps(extra))})))\n}}\n"
        for side, extra in sides.items()
    )
    (module / "main.tf").write_text(body)
    assert terraform(["init", "-backend=false"], module).returncode == 0
    applied = terraform(["apply", "-auto-approve", "-lock=false"], module)
    assert applied.returncode == 0, applied.stderr
    rendered = json.loads(terraform(["output", "-json"], module).stdout)
    result = {}
    for side in sides:
        text = rendered[side]["value"]
        assert text.startswith("#cloud-config\n")
        result[side] = {"text": text, "config": yaml.safe_load(text)}
    return result


def files(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in config["write_files"]}


def test_cloud_init_installs_the_stack(cloud_init: dict[str, dict[str, Any]]) -> None:
    for side, rendered in cloud_init.items():
        config = rendered["config"]
        assert {"docker.io", "keepalived", "jq", "postgresql-client-16"} <= set(config["packages"])
        commands = [" ".join(c) if isinstance(c, list) else c for c in config["runcmd"]]
        text = "\n".join(commands)
        assert "https://github.com/example/minitwit.git" in text
        assert "docker swarm init" in text
        assert "/opt/minitwit/deploy/release.sh '1.0.0'" in text
        assert "enable --now keepalived.service minitwit-backup.timer" in text
        written = files(config)
        failover = written["/etc/minitwit/failover.env"]["content"]
        assert f"SIDE={side}\n" in failover
        assert f"PREFERRED={1 if side == 'blue' else 0}\n" in failover
        assert "PUBLIC_IP=198.51.100.10\n" in failover
        assert (
            "MINITWIT_IMAGE=ghcr.io/example/minitwit\n"
            in (written["/etc/minitwit/release.env"]["content"])
        )
        assert "MINITWIT_REPLICAS=3\n" in written["/etc/minitwit/release.env"]["content"]
        dropin = written["/etc/systemd/system/keepalived.service.d/minitwit.conf"]["content"]
        assert "ExecStartPre=/opt/minitwit/deploy/keepalived/render.sh" in dropin
        assert (
            "OnCalendar=*-*-* 03:17:00 UTC"
            in (written["/etc/systemd/system/minitwit-backup.timer.d/schedule.conf"]["content"])
        )
        assert written["/etc/minitwit/db-ca.crt"]["content"].startswith("-----BEGIN CERTIFICATE")
        assert (
            "169.254.169.254"
            in written["/etc/systemd/system/docker.service.d/minitwit.conf"]["content"]
        )


def test_cloud_init_keeps_secrets_in_root_only_files(
    cloud_init: dict[str, dict[str, Any]],
) -> None:
    for rendered in cloud_init.values():
        config = rendered["config"]
        for path, entry in files(config).items():
            if any(secret in entry["content"] for secret in SECRETS):
                assert entry["permissions"] == "0600", path
        commands = json.dumps(config["runcmd"])
        for secret in SECRETS:
            assert secret not in commands
        assert (
            "DATABASE_URL=postgres://minitwit:DB-PASSWORD-SECRET@"
            in files(config)["/etc/minitwit/minitwit.env"]["content"]
        )


def test_only_blue_bootstraps_the_database(cloud_init: dict[str, dict[str, Any]]) -> None:
    blue, green = cloud_init["blue"], cloud_init["green"]
    assert "/root/minitwit-db-bootstrap.env" in files(blue["config"])
    assert 'ALTER DATABASE "minitwit" OWNER TO "minitwit"' in blue["text"]
    assert "/root/minitwit-db-bootstrap.env" not in files(green["config"])
    assert "ADMIN-SECRET" not in green["text"]
