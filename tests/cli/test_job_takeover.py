"""Jobs outlive the server that ran them (issue 18): two real `facesearch serve`
processes share a real PostgreSQL catalog; the server running an ingest job is killed
with SIGKILL, twice, and each time the other takes the job over once its lease has
expired, resumes it, and the audit log records the hand-over. A server restarted
meanwhile leaves the job its peer runs alone. In the end every file is stored once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from crashkit import lfw_folder
from server import Server, first_login

from facesearch.store.database import connect

IMAGES = 300
LEASE_SECONDS = 3
PASSWORD = "correct horse battery staple"


def _query(url: str, sql: str, params=()) -> list[tuple]:
    conn = connect(url)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def _stored(url: str) -> int:
    return _query(url, "SELECT COUNT(*) FROM images")[0][0]


def _holder(url: str, job_id: int) -> tuple[str, str | None]:
    return _query(url, "SELECT status, lease_holder FROM jobs WHERE id = ?", (job_id,))[0]


def _pid(holder: str) -> int:
    return int(holder.split("/")[2])


def _until(check, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _login(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


@pytest.mark.slow
def test_a_job_survives_the_death_of_its_server(tmp_path, cache_dir, lfw, postgres):
    url = postgres.create_database()
    folder = tmp_path / "in"
    readable = lfw_folder(lfw, folder, IMAGES, first_letters="EF")
    env = {
        "FACESEARCH_DATABASE_URL": url, "FACESEARCH_CRYPTO__KEY_FILE": str(tmp_path / "key"),
        "FACESEARCH_BATCH_IMAGES": "4", "FACESEARCH_JOBS__LEASE_SECONDS": str(LEASE_SECONDS),
        "FACESEARCH_API__ALLOWED_ROOTS": json.dumps([str(tmp_path)]),
    }  # fmt: skip
    servers = [Server(tmp_path / name, cache_dir, **env) for name in ("a", "b")]
    try:
        servers[0].start()  # first alone: it makes the key file and the first account
        client = first_login(servers[0], PASSWORD)
        servers[1].start()
        declared = {"name": "lfw", "source": "LFW", "legal_basis": "research"}
        assert client.post("/api/collections", json=declared).status_code == 201
        job = client.post("/api/jobs", json={"collection": "lfw", "paths": [str(folder)]})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]

        def running_on() -> Server:
            _status, holder = _until(
                lambda: (lambda s: s if s[0] == "running" and s[1] else None)(
                    _holder(url, job_id)
                ),
                "the job to run",
            )  # fmt: skip
            return next(s for s in servers if s.process.pid == _pid(holder))

        # Either server may have claimed it. The other restarts meanwhile: the job it
        # does not run stays with its peer (it is not queued again).
        runner = running_on()
        idle = next(s for s in servers if s is not runner)
        idle.stop()
        idle.start()
        status, holder = _holder(url, job_id)
        assert status == "running" and _pid(holder) == runner.process.pid
        assert _stored(url) < IMAGES, "the job ended before the kills; give it more images"

        kills, killed_pids = [], []
        for round_ in range(2):
            before = _stored(url)
            _until(lambda b=before: _stored(url) >= b + 8, "more images stored")
            killed_pid = runner.process.pid
            runner.kill()
            killed_pids.append(killed_pid)
            kills.append(_stored(url))
            survivor = next(s for s in servers if s is not runner)
            _until(lambda p=killed_pid: (lambda h: h[1] and _pid(h[1]) != p)(_holder(url, job_id)),
                   "the take-over")  # fmt: skip
            status, holder = _holder(url, job_id)
            assert status == "running" and _pid(holder) == survivor.process.pid
            if round_ == 0:
                runner.start()  # back, to take the job over in the next round
            runner = survivor
        client = _login(runner)
        done = _until(
            lambda: (lambda j: j if j["status"] not in ("queued", "running") else None)(
                client.get(f"/api/jobs/{job_id}").json()
            ),
            "the job to finish",
        )  # fmt: skip
    finally:
        for server in servers:
            server.stop()

    assert kills[0] < kills[1] < IMAGES, kills  # both kills landed mid-job
    assert (done["status"], done["errors"]) == ("finished", 4), done  # the 4 bad files
    # Nothing lost, nothing stored twice.
    rows = _query(url, "SELECT path, sha256 FROM images")
    assert sorted(p for p, _ in rows) == sorted(map(str, readable))
    assert len({sha for _, sha in rows}) == len(rows) == IMAGES
    (faces, counted), = _query(
        url, "SELECT (SELECT COUNT(*) FROM faces), (SELECT SUM(face_count) FROM images)"
    )  # fmt: skip
    duplicated = _query(url, "SELECT COUNT(*) FROM (SELECT image_id, x, y FROM faces "
                        "GROUP BY image_id, x, y HAVING COUNT(*) > 1) d")[0][0]  # fmt: skip
    assert faces == counted >= IMAGES and duplicated == 0
    assert (done["images"], done["faces"]) == (IMAGES, faces), done
    # Each hand-over is in the audit log, from the killed server to the one that took over.
    takeovers = _query(
        url, "SELECT actor, details FROM audit_log WHERE action = 'job_taken_over' ORDER BY seq"
    )
    assert len(takeovers) == 2, takeovers
    handed = [json.loads(details) for _, details in takeovers]
    assert {actor for actor, _ in takeovers} == {"server"}
    for details, killed in zip(handed, killed_pids, strict=True):
        assert details["job_id"] == job_id and details["collection"] == "lfw"
        assert _pid(details["from_server"]) == killed != _pid(details["to_server"])
    # The surviving server's index agrees with the shared catalog.
    verify = subprocess.run(
        [sys.executable, "-m", "facesearch", "--data-dir", str(runner.data_dir), "--cache-dir",
         str(cache_dir), "index", "verify", "--json"],
        capture_output=True, text=True, timeout=300, env=runner.env,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr[-2000:]
    report = json.loads(verify.stdout)
    assert report["ok"] and report["faces_in_catalog"] == faces, report
