"""Private redis-server processes for tests and benchmarks: one node, or a 3-node cluster.

Why not the Redis on 6379: tests must not depend on (or clobber) a developer's or CI's shared
server, and the "Redis restarted mid-run" and "Redis is down" cases need a server the test can
kill. Each server gets a free loopback port, no persistence (`--save "" --appendonly no`), so a
`restart()` comes back empty exactly like a crashed cache node.

Usage::

    server = RedisServer.start()          # waits until PING answers
    server.url                            # "redis://127.0.0.1:<port>/0"
    server.stop(); server.start_again()   # or server.restart(): same port, data lost
    server.close()                        # SIGTERM, wait, remove the temp dir

    cluster = RedisCluster.start()        # 3 masters, no replicas, all slots covered
    cluster.url                           # "redis://127.0.0.1:<first port>/0" (a startup node)
    cluster.restart()                     # same ports, new empty cluster
    cluster.close()

Both are context managers. Only `redis-server` and `redis-cli` on PATH are required.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, cluster_bus: bool = False) -> int:
    """A loopback port nobody listens on (and port+10000 too, for a cluster node's bus).

    Ports come from a random draw in 20000-45000 rather than from binding port 0, because a
    cluster node also needs port+10000 free, which the kernel's ephemeral range can't promise.
    """
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(20000, 45000)
        if _bindable(port) and (not cluster_bus or _bindable(port + 10000)):
            return port
    raise RuntimeError("no free port found")


def _command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one inline command over a raw socket and return the raw reply (no client needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall((" ".join(args) + "\r\n").encode())
        reply = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return reply
            reply += data
            head, sep, _ = reply.partition(b"\r\n")
            if not sep:
                continue
            if not head.startswith(b"$") or head == b"$-1":
                return reply  # simple string, error, integer or nil: one line
            if len(reply) >= len(head) + 2 + int(head[1:]) + 2:
                return reply


def _wait_for_ping(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if _command(port, "PING").startswith(b"+PONG"):
                return
        time.sleep(0.01)
    raise TimeoutError(f"redis-server on port {port} did not answer PING")


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class RedisServer:
    """One redis-server child process on a fixed loopback port."""

    port: int
    directory: Path
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    _owns_directory: bool = True

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        directory: Path | None = None,
        timeout: float = 10.0,
    ) -> RedisServer:
        owns = directory is None
        directory = directory or Path(tempfile.mkdtemp(prefix="sb-redis-"))
        server = cls(port or free_port(), directory, tuple(extra_args), _owns_directory=owns)
        server.start_again(timeout=timeout)
        return server

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start_again(self, *, timeout: float = 10.0) -> None:
        """Start the process (again) on the same port; a no-op if it is running."""
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
            )
        finally:
            log.close()
        _wait_for_ping(self.port, self.proc, time.monotonic() + timeout)

    def stop(self) -> None:
        """SIGTERM and wait: clients now get connection refused."""
        _terminate(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Stop and start on the same port; with no persistence the data is gone."""
        self.stop()
        self.start_again()

    def flushall(self) -> None:
        _command(self.port, "FLUSHALL")

    def close(self) -> None:
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class RedisCluster:
    """Three cluster-enabled masters on loopback with all 16384 slots assigned (no replicas)."""

    nodes: list[RedisServer]
    directory: Path
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, size: int = 3, *, timeout: float = 30.0) -> RedisCluster:
        directory = Path(tempfile.mkdtemp(prefix="sb-redis-cluster-"))
        ports: list[int] = []
        while len(ports) < size:
            port = free_port(cluster_bus=True)
            if port not in ports:
                ports.append(port)
        nodes = [
            RedisServer(
                port,
                directory / str(port),
                (
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000",
                ),
                _owns_directory=False,
            )
            for port in ports
        ]  # fmt: skip
        cluster = cls(nodes, directory)
        try:
            cluster._create(timeout)
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def _create(self, timeout: float) -> None:
        for node in self.nodes:
            shutil.rmtree(node.directory, ignore_errors=True)  # a fresh nodes.conf each time
            node.start_again()
        result = subprocess.run(
            [
                REDIS_CLI, "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            capture_output=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout!r}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if all(
                    b"cluster_state:ok" in _command(node.port, "CLUSTER", "INFO")
                    for node in self.nodes
                ):
                    return
            time.sleep(0.05)
        raise TimeoutError("redis cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop every node and create a new, empty cluster on the same ports."""
        self.stop()
        self._create(timeout)

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
