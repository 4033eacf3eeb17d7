"""A real multi-node Ray cluster on one machine, one network namespace per node.

Each node (a head and N workers) runs in its own namespace with its own
address on a private /24; the namespaces are joined by veth pairs onto a
bridge that lives in a namespace of its own, so the host's network and
firewall are never touched. No namespace has a default route, and every
node is started with --node-ip-address (Ray would otherwise find its address
by contacting a public DNS server), so nothing leaves the machine.

Needs root and iproute2 (`ip netns`, veth, bridge). `RayCluster.start()`
raises `ClusterUnavailable` with the reason when namespaces cannot be made;
`stop()` kills every process in the namespaces and deletes them, and is safe
to call after a half-finished start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.213.7"
PORT = 6379
# Fast failure detection: a killed node is declared dead in about 3 s instead of 30 s.
# Ray's memory monitor is off: it watches the whole machine's memory, and other work
# on a shared machine must not get the test's actors killed.
CLUSTER_ENV = {
    "RAY_memory_monitor_refresh_ms": "0",
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_USAGE_STATS_ENABLED": "0",
}


class ClusterUnavailable(RuntimeError):
    """Network namespaces (or Ray) cannot be used on this machine."""


@dataclass
class Node:
    name: str  # the network namespace
    address: str
    head: bool


@dataclass
class RayCluster:
    workers: int = 2
    cpus_per_worker: int = 1
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    # Ray enables token authentication as soon as ~/.ray/auth_token exists, which any
    # local ray.init() creates: a cluster started while another test creates that file
    # would have a head and workers that disagree. Each cluster has its own token.
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[Node] = field(default_factory=list)
    temp_dir: Path | None = None

    @property
    def _auth(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def switch(self) -> str:
        return f"fsray-{self.tag}-sw"

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def address(self) -> str:
        return f"{self.head.address}:{PORT}"

    def start(self) -> RayCluster:
        self._check_prerequisites()
        # Ray's socket paths must stay under 108 bytes, so not under pytest's tmp_path.
        self.temp_dir = Path(tempfile.mkdtemp(prefix=f"fsray-{self.tag}-"))
        names = ["head"] + [f"w{i}" for i in range(1, self.workers + 1)]
        self.nodes = [
            Node(f"fsray-{self.tag}-{n}", f"{SUBNET}.{i + 1}", i == 0) for i, n in enumerate(names)
        ]
        try:
            self._make_network()
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise ClusterUnavailable(
                f"cannot create network namespaces: {exc.stderr.strip()}"
            ) from exc
        try:
            self._ray_start(self.head, "--head", f"--port={PORT}", "--num-cpus=0",
                            f"--temp-dir={self.temp_dir}", "--include-dashboard=false")  # fmt: skip
            for node in self.nodes[1:]:
                self._ray_start(node, f"--address={self.address}",
                                f"--num-cpus={self.cpus_per_worker}")  # fmt: skip
            self.wait_for_nodes(len(self.nodes))
        except BaseException:
            self.stop()
            raise
        return self

    def exec(self, node: Node, command: list[str], **kwargs) -> subprocess.Popen:
        """Start a process inside a node's namespace."""
        env = {**os.environ, **CLUSTER_ENV, **self._auth, **kwargs.pop("env", {})}
        return subprocess.Popen(["ip", "netns", "exec", node.name, *command], env=env, **kwargs)

    def run(self, node: Node, command: list[str], timeout: float = 120) -> str:
        env = {**os.environ, **CLUSTER_ENV, **self._auth}
        done = subprocess.run(
            ["ip", "netns", "exec", node.name, *command],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"{command} in {node.name} failed: {done.stdout}\n{done.stderr}")
        return done.stdout

    def pids(self, node: Node) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", node.name], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def kill(self, node: Node) -> int:
        """SIGKILL every process of a node at once, as if the machine had lost power."""
        pids = self.pids(node)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def alive_nodes(self) -> int:
        script = (
            "import ray; ray.init(address='auto', logging_level='ERROR', log_to_driver=False,"
            f" _node_ip_address='{self.head.address}');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        out = self.run(self.head, [sys.executable, "-c", script])
        return int(out.strip().splitlines()[-1])

    def wait_for_nodes(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        alive = 0
        while time.monotonic() < deadline:
            alive = self.alive_nodes()
            if alive == count:
                return
            time.sleep(1)
        raise RuntimeError(f"{alive} of {count} Ray nodes came up within {timeout} s")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.kill(node)
        # Processes die asynchronously; a namespace is deleted once they are gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(self.pids(n) for n in self.nodes):
            time.sleep(0.1)
        for name in [n.name for n in self.nodes] + [self.switch]:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # set-up

    def _check_prerequisites(self) -> None:
        if not sys.platform.startswith("linux"):
            raise ClusterUnavailable("network namespaces need Linux")
        if os.geteuid() != 0:
            raise ClusterUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise ClusterUnavailable("the `ip` command (Debian package iproute2) is missing")
        if importlib.util.find_spec("ray") is None:
            raise ClusterUnavailable("Ray is not installed (pip install 'ray>=2.60')")

    def _make_network(self) -> None:
        ip = _ip
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for index, node in enumerate(self.nodes):
            ip("netns", "add", node.name)
            ip("-n", node.name, "link", "set", "lo", "up")
            port = f"p{index}"
            ip("link", "add", "eth0", "netns", node.name, "type", "veth",
               "peer", "name", port, "netns", self.switch)  # fmt: skip
            ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            ip("-n", node.name, "addr", "add", f"{node.address}/24", "dev", "eth0")
            ip("-n", node.name, "link", "set", "eth0", "up")

    def _ray_start(self, node: Node, *args: str) -> None:
        # `ray start` of this interpreter's Ray, whatever is on PATH.
        ray = [sys.executable, "-m", "ray.scripts.scripts", "start"]
        memory = f"--object-store-memory={200 * 1024 * 1024}"
        command = [*ray, f"--node-ip-address={node.address}", "--num-gpus=0", memory,
                   "--disable-usage-stats", *args]  # fmt: skip
        try:
            self.run(node, command)
        except RuntimeError:
            # Ray gives a raylet 30 s to register, which a machine under heavy load can
            # miss; a second try starts the node afresh.
            self.kill(node)
            time.sleep(1)
            self.run(node, command)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)
