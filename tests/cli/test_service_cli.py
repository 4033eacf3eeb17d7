"""`facesearch users` and `facesearch serve`: the first administrator, and a server that is
killed with SIGKILL in the middle of an ingest job and resumes it when started again."""

from __future__ import annotations

import json
import re
import time

import httpx
from server import Server, first_login
from typer.testing import CliRunner

from facesearch.cli import app
from facesearch.config import Settings
from facesearch.governance.auth import Authenticator
from facesearch.storage import open_catalog_file
from facesearch.store.accounts import Accounts
from facesearch.store.db import Database

runner = CliRunner()


def test_create_admin_prints_a_one_time_password_that_logs_in(tmp_path):
    base = ["--data-dir", str(tmp_path)]
    made = runner.invoke(
        app, [*base, "users", "create-admin", "alice", "--organisation", "Press desk"]
    )
    assert made.exit_code == 0, made.output
    password = re.search(r"one-time password: (\S+)", made.output).group(1)
    again = runner.invoke(app, [*base, "users", "create-admin", "alice"])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    listed = json.loads(runner.invoke(app, [*base, "users", "list", "--json"]).stdout)
    assert listed == [{
        "username": "alice", "organisation": "Press desk", "role": "administrator",
        "active": True, "expires_at": None, "last_login_at": None,
    }]  # fmt: skip
    db = Database(Settings(data_dir=tmp_path).catalog_path)
    try:
        _, actor = Authenticator(Accounts(db), Settings().api).login("alice", password)
    finally:
        db.close()
    assert actor.must_change_password and actor.organisation == "Press desk"


def _wait(client: httpx.Client, job_id: int, until, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id}: {job}")


def test_serve_creates_the_first_admin_and_resumes_a_job_after_sigkill(tmp_path, cache_dir, lfw):
    files = sorted(lfw.glob("B*/*_0001.jpg"))[:30]
    server = Server(tmp_path / "data", cache_dir, FACESEARCH_BATCH_IMAGES="2")
    with server:
        assert "administrator admin (default) created" in "".join(server.output)
        client = first_login(server, "correct horse battery staple")
        declared = {"name": "lfw", "source": "LFW", "legal_basis": "research"}
        assert client.post("/api/collections", json=declared).status_code == 201
        job = client.post(
            "/api/collections/lfw/uploads",
            files=[("files", (f.name, f.read_bytes(), "image/jpeg")) for f in files],
        ).json()
        running = _wait(client, job["id"], lambda j: j["status"] == "running" and j["done"] >= 2)
        server.kill()
    assert running["done"] < 30
    with open_catalog_file(server.data_dir / "catalog.sqlite3") as catalog:
        stored_before = catalog.stats()["images"]
    assert 0 < stored_before < 30

    # No new administrator on the second start: the first one exists.
    with server:
        assert server.one_time_password() is None
        client = httpx.Client(base_url=server.url, timeout=60)
        login = {"username": "admin", "password": "correct horse battery staple"}
        assert client.post("/api/auth/login", json=login).status_code == 200
        done = _wait(client, job["id"], lambda j: j["status"] not in ("queued", "running"))
    assert (done["status"], done["total"], done["done"], done["images"], done["errors"]) == (
        "finished", 30, 30, 30, 0,
    )  # fmt: skip
    with open_catalog_file(server.data_dir / "catalog.sqlite3") as catalog:
        images = catalog.images(limit=1000)
        runs = catalog.runs()
    assert len(images) == len({i["sha256"] for i in images}) == 30
    assert [r["status"] for r in runs][-1] == "running"  # the run the kill cut short
    assert runs[0]["status"] == "finished"
