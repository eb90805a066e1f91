"""redis-server processes that tests own: one they can SIGKILL and restart on the same
port and data folder (AOF on), and a three-master Redis Cluster.  Every server binds
127.0.0.1 only and is stopped (and reaped) by the fixture that started it."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")  # every write on disk before its reply


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as cluster nodes need
    (and at most 55535, so that the bus port exists)."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20_000, 45_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def redis_executable(name: str = "redis-server") -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap", pytrace=False)
    return path


def ask(port: int, *command: str, timeout_s: float = 1.0) -> str:
    """One command through redis-cli; its output ('' if Redis does not answer)."""
    try:
        out = subprocess.run(
            [redis_executable("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *command],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return out.stdout.decode(errors="replace")


class RedisProcess:
    """A redis-server on ``port`` with its data in ``folder``: ``start()`` again after
    ``kill()`` comes back with what it had written (with AOF_ARGS)."""

    def __init__(self, folder: Path, *args: str, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.folder / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    redis_executable(),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.folder),
                    "--save",
                    "",
                    *self.args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            if ask(self.port, "PING").startswith("PONG"):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"redis-server on {self.port} did not start: {(self.folder / 'redis.log').read_text()[-500:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would; reaped."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RedisCluster3:
    """Three redis-server masters (cluster mode, no replicas) in ``folder``, joined by
    ``redis-cli --cluster create``; ``url`` is the first node, a startup node."""

    def __init__(self, folder: Path):
        self.nodes = [
            RedisProcess(
                folder / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--appendonly",
                "no",
                port=cluster_port(),
            )
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
        except RuntimeError:
            self.stop()  # the nodes that did start
            raise
        out = subprocess.run(
            [
                redis_executable("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout.decode()[-500:]} {out.stderr.decode()}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in ask(node.port, "CLUSTER", "INFO") for node in self.nodes):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
