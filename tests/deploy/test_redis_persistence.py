"""The Redis command lines we ship, run on a real redis-server: they must parse, keep an
append-only file that survives a restart, never evict, and (Kubernetes) refuse clients without
the password while accepting the URL the daemon is given."""

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import yaml

from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "0123456789abcdef" * 4  # what `openssl rand -hex 32` gives: URL-safe
REDIS_SERVER = shutil.which("redis-server")


def kubernetes_args() -> list[str]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "redis.yaml").read_text())
    [redis_set] = [d for d in docs if d and d["kind"] == "StatefulSet"]
    [container] = redis_set["spec"]["template"]["spec"]["containers"]
    return [a.replace("$(REDIS_PASSWORD)", PASSWORD) for a in container["args"]]


def compose_args() -> list[str]:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return [str(a) for a in compose["services"]["redis"]["command"]]


def kubernetes_url(port: int) -> str:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "switchboard.yaml").read_text())
    [deployment] = [d for d in docs if d and d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [url] = [e["value"] for e in container["env"] if e["name"] == "SWITCHBOARD_REDIS_URL"]
    return (
        str(url).replace("$(REDIS_PASSWORD)", PASSWORD).replace("@redis:6379", f"@127.0.0.1:{port}")
    )


class Server:
    """redis-server with `args` (as the image's entry point would run them) in `data`."""

    def __init__(self, args: list[str], data: Path) -> None:
        assert args[0] == "redis-server" and REDIS_SERVER is not None
        self.port = free_port()
        self.args = [REDIS_SERVER, *args[1:], "--port", str(self.port), "--bind", "127.0.0.1"]
        self.args += ["--dir", str(data), "--logfile", str(data / "log")]
        self.password = PASSWORD if "--requirepass" in args else None
        self.process = subprocess.Popen(self.args)
        if not self._wait():
            self.process.kill()
            self.process.wait()
            log = data / "log"
            pytest.fail(f"redis-server did not start: {log.read_text() if log.exists() else ''}")

    def _wait(self) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    return False
                time.sleep(0.05)
        return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        """SHUTDOWN as on SIGTERM: Redis flushes the append-only file first."""
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.process.poll() is None:
            s.process.kill()
            s.process.wait()


pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is absent")


@pytest.mark.parametrize("source", [kubernetes_args, compose_args], ids=["kubernetes", "compose"])
def test_redis_keeps_writes_across_a_restart_and_never_evicts(
    source: Callable[[], list[str]], servers: list[Server], tmp_path: Path
) -> None:
    args = source()
    first = Server(args, tmp_path)
    servers.append(first)
    config = first.client().config_get("*")
    assert config["appendonly"] == "yes"
    assert config["maxmemory-policy"] == "noeviction"
    first.client().set("lease", "epoch-7")
    first.stop()

    second = Server(args, tmp_path)
    servers.append(second)
    assert second.client().get("lease") == b"epoch-7"


def test_without_the_append_only_file_the_same_restart_loses_the_write(
    servers: list[Server], tmp_path: Path
) -> None:
    """The control: what the old compose file ran (`--save "" --appendonly no`)."""
    args = ["redis-server", "--save", "", "--appendonly", "no"]
    first = Server(args, tmp_path)
    servers.append(first)
    first.client().set("lease", "epoch-7")
    first.stop()
    second = Server(args, tmp_path)
    servers.append(second)
    assert second.client().get("lease") is None


def test_kubernetes_redis_wants_the_password_the_daemon_url_carries(
    servers: list[Server], tmp_path: Path
) -> None:
    server = Server(kubernetes_args(), tmp_path)
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as anonymous:
        anonymous.sendall(b"PING\r\n")
        assert anonymous.recv(100).startswith(b"-NOAUTH")
    daemon = redis.Redis.from_url(kubernetes_url(server.port))
    assert daemon.ping()
    assert server.client().config_get("maxmemory")["maxmemory"] == str(512 * 1024 * 1024)
