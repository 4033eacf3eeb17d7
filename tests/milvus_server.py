"""A real Milvus standalone server for the tests, reachable on 127.0.0.1 only.

The `milvus` package (2.3) embeds the server binary, but its gRPC services (proxy,
coordinators, nodes, metrics) listen on every interface and it has no setting to
change that. So the server runs in a network namespace of its own that holds only a
loopback interface (`unshare --net`, root): nothing outside the namespace can reach
it, and it can reach nothing. Its fixed ports cannot collide with another test
worker's server either, since each server has its own namespace. A small forwarder
thread here listens on 127.0.0.1 (a free port the kernel picks) and relays each
connection into the namespace, where it connects to the server's 127.0.0.1:19530.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

CLONE_NEWNET = 0x40000000
CHILD = Path(__file__).with_name("milvus_child.py")


def _enter_netns(pid: int) -> None:
    """Move the calling thread (only) into the network namespace of process `pid`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into the Milvus namespace: {os.strerror(err)}")
    finally:
        os.close(fd)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Forwarder:
    """127.0.0.1:port here → 127.0.0.1:target_port inside the namespace of `pid`."""

    def __init__(self, pid: int, target_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._pid, self._target = pid, target_port
        self._sockets: list[socket.socket] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error

    def _serve(self) -> None:
        try:
            _enter_netns(self._pid)  # the listener was made before, in our own namespace
        except OSError as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            sock.close()


class MilvusServer:
    def __init__(self, base: Path) -> None:
        for tool in ("unshare", "ip"):
            if shutil.which(tool) is None:
                pytest.skip(f"the Milvus tests need `{tool}` (util-linux, iproute2)")
        if os.geteuid() != 0:
            pytest.skip("the Milvus tests run the server in its own network namespace: need root")
        pytest.importorskip("milvus", reason="pip install 'milvus==2.3.*' for the Milvus tests")
        base.mkdir(parents=True, exist_ok=True)
        self.log = (base / "child.log").open("w")
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c",
             'ip link set lo up && exec "$0" "$1" "$2"', sys.executable, str(CHILD), str(base)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # "ready PORT" once it answers health checks
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"Milvus did not start: {line!r}; see {base / 'child.log'}")
        self.forwarder = Forwarder(self.proc.pid, int(line.split()[1]))
        self.uri = f"http://127.0.0.1:{self.forwarder.port}"

    def stop(self) -> None:
        if hasattr(self, "forwarder"):
            self.forwarder.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the child stops the server it started
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
