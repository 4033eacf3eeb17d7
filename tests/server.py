"""Start the real `facesearch serve` in a subprocess on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(
        self, data_dir: Path, cache_dir: Path, serve_args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.data_dir = data_dir
        self.serve_args = serve_args
        self.cache_dir = cache_dir
        self.env = {**os.environ, "FACESEARCH_WORKERS": "1", **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.process: subprocess.Popen | None = None

    def spawn(self) -> subprocess.Popen:
        """Start the process and return at once, without waiting for it to answer."""
        command = [
            sys.executable, "-m", "facesearch", "--data-dir", str(self.data_dir),
            "--cache-dir", str(self.cache_dir), "serve", "--host", "127.0.0.1",
            "--port", str(self.port), *self.serve_args,
        ]  # fmt: skip
        self.output = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self.process

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit status (negative: a signal)."""
        assert self.process is not None
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def start(self, timeout: float = 90) -> Server:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server stopped:\n" + "".join(self.output))
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not answer in time:\n" + "".join(self.output))

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def one_time_password(self) -> str | None:
        found = re.search(r"one-time password: (\S+)", "".join(self.output))
        return found.group(1) if found else None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or a power cut of the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def first_login(server: Server, new_password: str) -> httpx.Client:
    """Log in as the first administrator, replace the one-time password, return the client."""
    password = server.one_time_password()
    assert password, "".join(server.output)
    client = httpx.Client(base_url=server.url, timeout=60)
    csrf = client.post("/api/auth/login", json={"username": "admin", "password": password}).json()[
        "csrf_token"
    ]
    changed = client.post(
        "/api/auth/password", json={"current_password": password, "new_password": new_password},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    client.headers["X-CSRF-Token"] = changed.headers["X-CSRF-Token"]
    return client
