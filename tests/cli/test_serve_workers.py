"""Several server processes behind one port (issue 16): `facesearch serve --workers 2`.

Searches from several clients at once while an ingest job runs, through the real
server: none fails, none returns a face of another organisation, each is audited
once and the audit chain verifies. Failed logins counted by one worker lock the
name in every worker, and the lock survives a restart.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server import Server, first_login

PASSWORD = "correct horse battery staple"
PURPOSE = {"purpose": "missing person", "case": "MP-16"}
PEOPLE = ("Colin_Powell", "Tony_Blair", "George_W_Bush", "Gerhard_Schroeder")


def _login(server: Server, username: str, password: str = PASSWORD) -> httpx.Response:
    # A client of its own: a fresh connection, which either worker may accept.
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post("/api/auth/login", json={"username": username, "password": password})


def _client(server: Server, username: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=120)
    answer = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def _upload(client: httpx.Client, collection: str, files: list[Path]) -> int:
    answer = client.post(
        f"/api/collections/{collection}/uploads",
        files=[("files", (f"{f.parent.name}_{f.name}", f.read_bytes(), "image/jpeg"))
               for f in files],
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def _wait(client: httpx.Client, job_id: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.mark.slow
def test_two_workers_search_while_ingesting_apart_audited_and_locked_out(tmp_path, cache_dir, lfw):
    photos = {name: sorted((lfw / name).glob("*.jpg")) for name in PEOPLE}
    env = {"FACESEARCH_API__LOGIN_MAX_FAILURES": "3", "FACESEARCH_BATCH_IMAGES": "4"}
    server = Server(tmp_path / "data", cache_dir, serve_args=("--workers", "2"), **env)
    try:
        server.start(timeout=180)
        admin = first_login(server, PASSWORD)
        other = admin.post("/api/organisations", json={"name": "other agency"})
        assert other.status_code == 201, other.text
        for username, role, organisation in (
            ("ann", "investigator", None), ("oscar", "administrator", other.json()["id"]),
            ("olga", "investigator", other.json()["id"]), ("audrey", "auditor", None),
            ("otto", "auditor", other.json()["id"]),
        ):  # fmt: skip
            created = admin.post("/api/users", json={
                "username": username, "role": role, "organisation_id": organisation,
                "password": PASSWORD, "must_change_password": False,
            })  # fmt: skip
            assert created.status_code == 201, created.text
        oscar = _client(server, "oscar")
        declared = {"source": "LFW", "legal_basis": "research"}
        for client, name in ((admin, "ours"), (oscar, "theirs")):
            made = client.post("/api/collections", json={"name": name, **declared})
            assert made.status_code == 201, made.text
        # The same people in both organisations: only scoping keeps them apart.
        first = [f for name in PEOPLE for f in photos[name][1:4]]
        for client, collection in ((admin, "ours"), (oscar, "theirs")):
            assert _wait(client, _upload(client, collection, first))["status"] == "finished"

        # More of them go in while the searches run.
        later = [f for name in PEOPLE for f in photos[name][4:16]]
        ingest = _upload(admin, "ours", later)
        probes = [photos[name][0].read_bytes() for name in PEOPLE]
        searchers = {"ann": _client(server, "ann"), "olga": _client(server, "olga")}

        def search(n: int) -> tuple[str, int, list[str]]:
            username = ("ann", "olga")[n % 2]
            answer = searchers[username].post(
                "/api/search", data={**PURPOSE, "top": "20"},
                files={"photo": ("probe.jpg", probes[n % len(probes)], "image/jpeg")},
            )  # fmt: skip
            matches = answer.json().get("matches", []) if answer.status_code == 200 else []
            return username, answer.status_code, [m["collection"] for m in matches]

        # The searches start once a worker has taken the job up (its runner polls).
        deadline = time.monotonic() + 120
        while admin.get(f"/api/jobs/{ingest}").json()["status"] == "queued":
            assert time.monotonic() < deadline, "no worker took the ingest job up"
            time.sleep(0.1)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(search, range(24)))
        assert _wait(admin, ingest)["status"] == "finished"
        assert [code for _, code, _ in results] == [200] * len(results), results
        for username, _, collections in results:
            assert collections, "every probe person is in both organisations"
            assert set(collections) == {"ours" if username == "ann" else "theirs"}, collections
        # Each search audited once, and the chain holds across both workers' writes.
        for auditor, username in (("audrey", "ann"), ("otto", "olga")):
            client = _client(server, auditor)
            entries = client.get("/api/audit", params={"action": "search"}).json()
            assert [e["actor"] for e in entries] == [username] * (len(results) // 2), entries
            verified = client.get("/api/audit/verify").json()
            assert verified["ok"], verified

        # Lock-out: failures on fresh connections (either worker) lock the name in all.
        for _ in range(3):
            assert _login(server, "ann", "wrong password").status_code == 401
        assert {_login(server, "ann").status_code for _ in range(6)} == {429}
        server.stop()
        server.start(timeout=180)
        assert _login(server, "ann").status_code == 429
    finally:
        server.stop()
