"""Collections and ingest jobs: declare, upload, ingest from allowed folders, follow, cancel,
delete, and resume after a restart."""

from __future__ import annotations

import json
import time

import pytest
from apiworld import build_app, lfw_slice, make_settings, upload, wait_for_job
from fastapi.testclient import TestClient
from linkfarm import place


def test_declare_show_change_and_delete_a_collection(world):
    client, admin = world.client, world.as_("administrator")
    body = {"name": "archive 1999", "source": "scans", "legal_basis": "consent forms",
            "retention_days": 30}  # fmt: skip
    created = client.post("/api/collections", json=body, headers=admin)
    assert created.status_code == 201
    assert created.json() | {"created_at": None} == {
        **body, "organisation": "default", "images": 0, "faces": 0, "errors": 0,
        "created_at": None,
    }  # fmt: skip
    assert client.post("/api/collections", json=body, headers=admin).status_code == 409
    for broken, field in (
        ({**body, "name": "../etc"}, "name"),
        ({**body, "name": "x", "legal_basis": ""}, "legal_basis"),
        ({**body, "name": "y", "retention_days": 0}, "retention_days"),
        ({"name": "z", "source": "s"}, "legal_basis"),
    ):
        answer = client.post("/api/collections", json=broken, headers=admin)
        assert answer.status_code == 422 and field in answer.json()["detail"], answer.text
    url = "/api/collections/archive%201999"
    assert client.get(url, headers=admin).json()["retention_days"] == 30
    changed = client.patch(url, json={"retention_days": None}, headers=admin)
    assert changed.status_code == 200 and changed.json()["retention_days"] is None
    assert client.patch(url, json={"retention_days": -1}, headers=admin).status_code == 422
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    assert client.delete(url, headers=admin).status_code == 404


def test_organisations_never_see_each_others_collections(world):
    client, outsider = world.client, world.as_("outsider")
    assert client.get("/api/collections", headers=outsider).json() == []
    answer = client.get("/api/collections/press", headers=outsider)
    assert answer.status_code == 404 and answer.json() == {"detail": "no collection named 'press'"}
    mine = client.get("/api/collections", headers=world.as_("auditor")).json()
    assert [c["name"] for c in mine if c["name"] == "press"] == ["press"]
    assert client.get("/api/jobs", headers=outsider).json() == []
    first_job = client.get("/api/jobs", headers=world.as_("investigator")).json()[-1]["id"]
    assert client.get(f"/api/jobs/{first_job}", headers=outsider).status_code == 404
    upload_there = client.post(
        "/api/collections/press/uploads", files=[("files", ("a.jpg", b"x"))], headers=outsider
    )
    assert upload_there.status_code == 404


def test_upload_refuses_other_files_and_records_unreadable_images(world, wild):
    client, investigator = world.client, world.as_("investigator")
    text = client.post(
        "/api/collections/press/uploads", files=[("files", ("notes.txt", b"hello"))],
        headers=investigator,
    )  # fmt: skip
    assert text.status_code == 415 and "notes.txt" in text.json()["detail"]
    none = client.post("/api/collections/press/uploads", headers=investigator)
    assert none.status_code == 422 and "files" in none.json()["detail"]
    job = client.post(
        "/api/collections/press/uploads", headers=investigator,
        files=[("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")),
               ("files", ("again.jpg", (wild / "img1.jpg").read_bytes()))],
    ).json()  # fmt: skip
    done = wait_for_job(client, job["id"], investigator)
    # The photo already stored is recognised by its content; the broken one is recorded.
    assert (done["status"], done["total"], done["images"], done["duplicates"], done["errors"]) == (
        "finished", 2, 0, 1, 1,
    )  # fmt: skip
    assert done["inputs"] == []  # upload folders stay the server's business


def test_folder_and_manifest_jobs_only_under_allowed_roots(world, wild, tmp_path):
    client, investigator = world.client, world.as_("investigator")
    root = world.settings.api.allowed_roots[0]
    folder = root / "batch"
    folder.mkdir()
    for name in ("img2.jpg", "img5.jpg"):
        place(wild / name, folder / name)
    # What a manifest names must lie under the allowed roots too.
    manifest = root / "list.csv"
    manifest.write_text(
        "path,source_url,captured_at,caption\n"
        f"{place(wild / 'img6.jpg', root / 'img6.jpg')},https://example.org/p/6,"
        "2019-05-04T10:00:00,red carpet\n"
    )
    client.post("/api/collections", headers=world.as_("administrator"),
                json={"name": "folders", "source": "server", "legal_basis": "test"})  # fmt: skip
    job = client.post(
        "/api/jobs", headers=investigator,
        json={"collection": "folders", "paths": [str(folder), str(manifest)]},
    )  # fmt: skip
    assert job.status_code == 202 and job.json()["inputs"] == [str(folder), str(manifest)]
    done = wait_for_job(client, job.json()["id"], investigator)
    assert (done["status"], done["images"], done["errors"]) == ("finished", 3, 0)
    again = client.post(
        "/api/jobs", headers=investigator, json={"collection": "folders", "paths": [str(folder)]}
    ).json()
    assert wait_for_job(client, again["id"], investigator)["duplicates"] == 2

    for path, status, words in (
        (str(tmp_path), 403, "outside the folders allowed"),
        (str(root / ".." / ".." / "etc"), 403, "outside the folders allowed"),
        ("relative/path", 403, "not an absolute path"),
        (str(root / "missing"), 404, "does not exist"),
    ):
        answer = client.post(
            "/api/jobs", headers=investigator, json={"collection": "folders", "paths": [path]}
        )
        assert answer.status_code == status and words in answer.json()["detail"], answer.text
    assert client.post(
        "/api/jobs", headers=investigator, json={"collection": "folders", "paths": []}
    ).status_code == 422  # fmt: skip


def test_server_side_ingest_is_off_without_allowed_roots(tmp_path, cache_dir, analyzer, wild):
    settings = make_settings(tmp_path, cache_dir)
    settings.api.allowed_roots = []
    app = build_app(settings, analyzer)
    services = app.state.services
    services.catalog.create_collection("c", "s", "l")
    user, _ = services.auth.create_user(
        "ops", services.accounts.organisation_named("default").id, "investigator",
        "a long enough password", must_change_password=False,
    )  # fmt: skip
    secret, _ = services.auth.create_token(user, "t")
    with TestClient(app) as client:
        answer = client.post(
            "/api/jobs", json={"collection": "c", "paths": [str(wild)]},
            headers={"Authorization": f"Bearer {secret}"},
        )  # fmt: skip
    assert answer.status_code == 403 and "FACESEARCH_API__ALLOWED_ROOTS" in answer.json()["detail"]


def test_progress_streams_as_server_sent_events(world):
    client, auditor = world.client, world.as_("auditor")
    job_id = client.get("/api/jobs", headers=auditor).json()[-1]["id"]
    with client.stream("GET", f"/api/jobs/{job_id}/events", headers=auditor) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    events = [block for block in text.strip().split("\n\n") if block]
    assert events[0].startswith("event: progress\ndata: ")
    progress = json.loads(events[0].split("data: ", 1)[1])
    assert progress["id"] == job_id and progress["status"] == "finished"
    assert progress["done"] == progress["total"] == 5
    assert events[-1] == "event: end\ndata: {}"


@pytest.fixture
def small_batches(tmp_path, cache_dir, analyzer):
    """An app whose ingest stores 2 images per batch, so it can be stopped between batches,
    with an investigator's and an administrator's token."""
    settings = make_settings(tmp_path, cache_dir)
    settings.batch_images = 2
    app = build_app(settings, analyzer)
    services = app.state.services
    services.catalog.create_collection("lfw", "LFW", "research benchmark")
    org = services.accounts.organisation_named("default").id
    headers = {}
    for role in ("investigator", "administrator"):
        user, _ = services.auth.create_user(
            role, org, role, "a long enough password", must_change_password=False
        )
        secret, _ = services.auth.create_token(user, "t")
        headers[role] = {"Authorization": f"Bearer {secret}"}
    return settings, app, headers


def _wait_running(client, job_id, headers):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] == "running" and job["done"] > 0:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise AssertionError("the job never started")


def test_cancel_a_running_job_and_refuse_to_delete_its_collection(small_batches, lfw):
    _, app, tokens = small_batches
    headers = tokens["investigator"]
    with TestClient(app) as client:
        job = upload(client, "lfw", lfw_slice(lfw, 24), headers).json()
        _wait_running(client, job["id"], headers)
        busy = client.delete("/api/collections/lfw", headers=tokens["administrator"])
        assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
        assert client.delete(f"/api/jobs/{job['id']}", headers=headers).status_code == 202
        # Durable at once, before the runner's next batch: a server killed now must not
        # resume the job on restart.
        row = app.state.services.jobs.get(job["id"])
        assert row.status == "cancelled" and row.lease_holder is None
        done = wait_for_job(client, job["id"], headers)
    assert done["status"] == "cancelled" and 0 < done["done"] < 24
    # The batch in flight at the cancel is stored and counted once the runner stopped.
    after = app.state.services.jobs.get(job["id"])
    assert after.status == "cancelled" and 0 < after.done < 24
    assert after.images == app.state.services.catalog.stats()["images"]


def test_a_job_interrupted_by_a_restart_resumes_and_stores_nothing_twice(small_batches, lfw):
    settings, app, tokens = small_batches
    headers = tokens["investigator"]
    files = lfw_slice(lfw, 24)
    with TestClient(app) as client:
        job = upload(client, "lfw", files, headers).json()
        _wait_running(client, job["id"], headers)
    # Leaving the block shut the server down mid-job: it stopped between batches.
    interrupted = app.state.services.jobs.get(job["id"])
    assert interrupted.status == "queued" and "resumes" in interrupted.message
    assert 0 < interrupted.done < 24

    restarted = build_app(settings, app.state.services.engine.analyzer)
    with TestClient(restarted) as client:
        done = wait_for_job(client, job["id"], headers)
    assert (done["status"], done["total"], done["done"], done["images"]) == (
        "finished", 24, 24, 24,
    )  # fmt: skip
    catalog = restarted.state.services.catalog
    hashes = [row["sha256"] for row in catalog.images(limit=1000)]
    assert len(hashes) == len(set(hashes)) == 24
