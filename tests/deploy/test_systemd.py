"""deploy/switchboard.service, checked by systemd's own tools.

`systemd-analyze verify` refuses a unit whose ExecStart is missing and prints (but exits 0 on)
unknown keys and bad values, so the check runs it in a scratch root where the installed
package's entry point exists, with the host's own unit files, and requires silence.
`systemd-analyze security --offline` scores the sandboxing (0 best, 10 worst).
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "switchboard.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = Path("/usr/lib/systemd/system")
# Exposure, in systemd-analyze's tenths: 20 is 2.0 ("OK"); an unhardened unit scores 8 or more.
EXPOSURE_THRESHOLD = 20

needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is absent")


def service_section(text: str) -> dict[str, list[str]]:
    """Every key of [Service] with all of its values (systemd allows a key to repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


SERVICE = service_section(UNIT.read_text())


def verify(unit_text: str, scratch: Path) -> str:
    """What `systemd-analyze verify` says about `unit_text` installed as switchboard.service."""
    assert SYSTEMD_ANALYZE is not None
    root = scratch / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system/switchboard.service").write_text(unit_text)
    [exec_start] = service_section(unit_text)["ExecStart"]
    binary = root / exec_start.split()[0].lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "switchboard.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (f"exit {done.returncode}\n" if done.returncode else "") + done.stdout + done.stderr


@needs_systemd
def test_systemd_accepts_the_unit_without_a_word(tmp_path: Path) -> None:
    assert verify(UNIT.read_text(), tmp_path) == ""


@needs_systemd
@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        ("Restart=on-failure", "Restart=sometimes"),
        ("LimitNOFILE=65536", "LimitNOFILE=lots"),
        ("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
    ],
)
def test_the_verify_check_fails_on_a_broken_unit(
    tmp_path: Path, broken: str, complaint: str
) -> None:
    text = UNIT.read_text()
    assert broken in text
    assert verify(text.replace(broken, complaint), tmp_path) != ""


def exposure_within_threshold(unit: Path) -> bool:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "security",
            "--offline=yes",
            f"--threshold={EXPOSURE_THRESHOLD}",
            str(unit),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


@needs_systemd
def test_the_unit_is_sandboxed(tmp_path: Path) -> None:
    assert exposure_within_threshold(UNIT)
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/opt/switchboard/venv/bin/switchboard serve\n")
    assert not exposure_within_threshold(bare)


def test_the_unit_allows_a_tab_per_descriptor_well_past_a_thousand() -> None:
    [limit] = SERVICE["LimitNOFILE"]
    assert int(limit) >= 65536


def test_the_unit_restarts_on_failure_and_gives_sigterm_time() -> None:
    assert SERVICE["Restart"] == ["on-failure"]
    assert SERVICE["KillSignal"] == ["SIGTERM"]
    [timeout] = SERVICE["TimeoutStopSec"]
    assert int(timeout.removesuffix("s")) >= 20


def test_the_unit_reads_secrets_from_a_file_not_from_itself() -> None:
    assert SERVICE["EnvironmentFile"] == ["/etc/switchboard/env"]
    assert "Environment" not in SERVICE
    assert "SWITCHBOARD_" not in "".join(v for vs in SERVICE.values() for v in vs)


def test_the_unit_names_its_key_hardening() -> None:
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DynamicUser": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert SERVICE[key] == [value], key
