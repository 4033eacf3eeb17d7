"""A real PostgreSQL server for the tests, and fixtures that run a test on each back end.

Each pytest process (each xdist worker) starts its own server from Debian's
PostgreSQL packages: a data folder in a fresh temporary folder, a free port on
127.0.0.1, its unix socket in that folder, stopped and removed when the session
ends. PostgreSQL refuses to run as root, so under root (CI) it runs as the
`postgres` system user. Every test gets a schema of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from facesearch.config import Settings
from facesearch.governance.crypto import Keyring
from facesearch.store.catalog import Catalog
from facesearch.store.db import Database

BACKENDS = ("sqlite", "postgresql")


def _bin_dir() -> Path | None:
    configured = os.environ.get("FACESEARCH_TEST_PG_BIN")
    if configured:
        return Path(configured)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="facesearch-pg-"))
        self.data = self.dir / "data"
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._names = itertools.count(1)
        self.port = 0
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--username=postgres",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        for attempt in range(5):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.dir} "
                # A test server: durability is not needed, speed is.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                log = str(self.dir / "server.log")
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t",
                          "60", "start")  # fmt: skip
                break
            except subprocess.CalledProcessError:
                if attempt == 4:  # another process took the port each time
                    raise
        atexit.register(self.stop)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.dir)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """The URL of a fresh, empty schema: cheaper than a database, as separate."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


_server: PostgresServer | None = None


def server() -> PostgresServer:
    """This test process's server, started on first use and stopped when the session ends."""
    global _server
    if _server is None:
        bin_dir = _bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").exists():
            pytest.skip("PostgreSQL's server is not installed (Debian: apt-get install postgresql)")
        _server = PostgresServer(bin_dir)
    return _server


@pytest.fixture(scope="session")
def postgres():
    return server()


def pytest_unconfigure(config) -> None:
    """Stop this process's server when pytest (or an xdist worker) finishes."""
    if _server is not None:
        _server.stop()


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A fresh, empty schema on the test server, as a postgresql:// URL."""
    return postgres.create_database()


@pytest.fixture(params=BACKENDS)
def catalog_backend(request) -> str:
    return request.param


@pytest.fixture
def catalog_location(catalog_backend: str, tmp_path: Path, request) -> Path | str:
    """Where a fresh catalog lives on this back end: a SQLite file or a PostgreSQL URL."""
    if catalog_backend == "postgresql":
        return request.getfixturevalue("database_url")
    return tmp_path / "catalog.sqlite3"


def open_catalog(location: Database | Path | str, key_dir: Path) -> Catalog:
    """The catalog at `location` (or over a shared database) with the master key kept in
    `key_dir`."""
    return Catalog(location, Keyring.from_file(key_dir / "master.key"))


@pytest.fixture
def catalog_settings(catalog_backend: str, tmp_path: Path, cache_dir: Path, request) -> Settings:
    """The `settings` fixture's installation, with its catalog on this back end."""
    extra = {}
    if catalog_backend == "postgresql":
        extra = {"database_url": request.getfixturevalue("database_url"),
                 "crypto": {"key_file": tmp_path / "master.key"}}  # fmt: skip
    return Settings(data_dir=tmp_path / "data", cache_dir=cache_dir, workers=1, **extra)


@pytest.fixture
def catalog_engine(catalog_settings: Settings, analyzer):
    from facesearch.engine import Engine

    with Engine(catalog_settings, analyzer=analyzer) as engine:
        yield engine
