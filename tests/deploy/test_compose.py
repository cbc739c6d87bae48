"""deploy/compose.yaml and the settings file it reads (deploy/.env.example is its template,
shared with systemd and `kubectl create secret --from-env-file`)."""

import json
import os
import re
import secrets
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from daemon.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
NODES = {name: s for name, s in SERVICES.items() if name.startswith("switchboard")}
EXAMPLE = DEPLOY / ".env.example"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WS_PORT, OPS_PORT = 8765, 8766


def published(service: dict[str, Any]) -> dict[int, tuple[str | None, int]]:
    """Container port -> (host address or None for all interfaces, host port)."""
    out: dict[int, tuple[str | None, int]] = {}
    for spec in service.get("ports", []):
        parts = str(spec).split(":")
        if len(parts) == 3:
            out[int(parts[2])] = (parts[0], int(parts[1]))
        else:
            out[int(parts[1])] = (None, int(parts[0]))
    return out


def test_two_nodes_share_one_redis() -> None:
    assert set(NODES) == {"switchboard-a", "switchboard-b"}
    for node in NODES.values():
        assert node["environment"]["SWITCHBOARD_REDIS_URL"] == "redis://redis:6379/0"
    ids = {node["environment"]["SWITCHBOARD_NODE_ID"] for node in NODES.values()}
    assert ids == set(NODES)


@pytest.mark.parametrize("name", sorted(NODES))
def test_the_ops_port_is_published_on_loopback_only(name: str) -> None:
    ports = published(NODES[name])
    assert ports[OPS_PORT][0] == "127.0.0.1"
    assert ports[WS_PORT][0] is None  # tabs come from other machines


def test_the_port_parser_sees_an_ops_port_on_all_interfaces() -> None:
    assert published({"ports": ["8766:8766"]})[OPS_PORT][0] is None


def test_host_ports_do_not_collide() -> None:
    host = [p for node in NODES.values() for p in published(node).values()]
    assert len(host) == len(set(host)) == 4


def test_redis_keeps_an_append_only_file_in_a_volume_and_never_evicts() -> None:
    redis = SERVICES["redis"]
    command = [str(a) for a in redis["command"]]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--save" not in command  # the old file turned snapshots off as well
    [volume] = redis["volumes"]
    name, path = volume.split(":")
    assert path == "/data"
    assert name in COMPOSE["volumes"]  # a named volume: survives `docker compose down`
    assert "ports" not in redis  # reachable from the nodes only


@pytest.mark.parametrize("name", sorted(NODES))
def test_secrets_come_from_the_uncommitted_env_file(name: str) -> None:
    node = NODES[name]
    assert node["env_file"] == [".env"]
    assert set(node["environment"]) == {"SWITCHBOARD_REDIS_URL", "SWITCHBOARD_NODE_ID"}
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "deploy/.env"], check=False
    )
    assert ignored.returncode == 0, "deploy/.env must be ignored by git"


@pytest.mark.parametrize("name", sorted(NODES))
def test_nodes_run_locked_down_with_room_for_tabs(name: str) -> None:
    node = NODES[name]
    assert node["read_only"] is True
    assert node["tmpfs"] == ["/tmp"]
    assert node["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in node["security_opt"]
    assert node["ulimits"]["nofile"] >= 65536
    assert node["image"] == f"switchboard:{VERSION}"


def example_lines() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) for every KEY=value line of the example, commented or not."""
    out = []
    for line in EXAMPLE.read_text().splitlines():
        m = re.fullmatch(r"(#?)(SWITCHBOARD_[A-Z0-9_]+)=(.*)", line)
        if m:
            out.append((m[2], m[3], m[1] == "#"))
    return out


def test_every_setting_in_the_example_is_one_the_daemon_reads() -> None:
    fields = {"SWITCHBOARD_" + f.upper() for f in Settings.model_fields}
    names = [name for name, _, _ in example_lines()]
    assert names, "no settings found in .env.example"
    assert set(names) - fields == set()
    assert len(names) == len(set(names))


def test_the_example_holds_placeholders_not_working_secrets() -> None:
    active = {name: value for name, value, commented in example_lines() if not commented}
    assert active["SWITCHBOARD_SECRET"] == ""
    assert active["SWITCHBOARD_ADMIN_TOKEN"] == ""
    assert "SUBDOMAIN" in active["SWITCHBOARD_ZENDESK_URL"]
    # Zendesk credentials stay commented: an empty line would count as a configured credential.
    credentials = [n for n, _, c in example_lines() if "TOKEN" in n and "ZENDESK" in n]
    assert credentials and all(n not in active for n in credentials)


def test_the_example_values_are_unquoted_for_compose_systemd_and_kubectl_alike() -> None:
    for name, value, _ in example_lines():
        assert not value.startswith(("'", '"')), name
    origins = {n: v for n, v, _ in example_lines()}["SWITCHBOARD_ALLOWED_ORIGINS"]
    assert json.loads(origins) == ["https://SUBDOMAIN.zendesk.com"]


def load_example(monkeypatch: pytest.MonkeyPatch, fill: dict[str, str]) -> Settings:
    """Settings as a node reads them from the example (with `fill` written into it)."""
    for name in [n for n in os.environ if n.startswith("SWITCHBOARD_")]:
        monkeypatch.delenv(name)
    for name, value, commented in example_lines():
        if name in fill:
            monkeypatch.setenv(name, fill[name])
        elif not commented:
            monkeypatch.setenv(name, value)
    return Settings()


def test_the_example_as_shipped_does_not_start_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        load_example(monkeypatch, {})


def test_the_example_filled_in_is_a_complete_production_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = secrets.token_hex(32)
    settings = load_example(
        monkeypatch,
        {
            "SWITCHBOARD_SECRET": secret,
            "SWITCHBOARD_ADMIN_TOKEN": secrets.token_hex(32),
            "SWITCHBOARD_ZENDESK_OAUTH_TOKEN": "oauth-access-token",
            "SWITCHBOARD_HOST": "0.0.0.0",  # as the image and the manifests set it
        },
    )
    assert settings.secret is not None and settings.secret.get_secret_value() == secret
    assert settings.allowed_origins == ["https://SUBDOMAIN.zendesk.com"]
    assert settings.zendesk_url == "https://SUBDOMAIN.zendesk.com"
