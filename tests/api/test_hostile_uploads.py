"""The hostile corpus (tests/badfiles.py) through the API: uploaded into a collection, every
file yields faces or a recorded, clear error; sent as a probe photo, every file gets an
answer or a clear 4xx, never a server error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from apiworld import PURPOSE, wait_for_job
from badfiles import CLEAR_ERRORS, ERROR, FACES, hostile_corpus

FACE = ("Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")


@pytest.fixture(scope="module")
def cases(lfw):
    return hostile_corpus(lfw.joinpath(*FACE).read_bytes())


def test_an_uploaded_corpus_yields_faces_or_clear_errors(world, cases):
    admin = world.as_("administrator")
    created = world.client.post(
        "/api/collections", headers=admin,
        json={"name": "hostile", "source": "hostile corpus", "legal_basis": "test"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    parts = [("files", (c.name, c.data, "application/octet-stream")) for c in cases]
    response = world.client.post("/api/collections/hostile/uploads", files=parts, headers=admin)
    assert response.status_code == 202, response.text
    job = wait_for_job(world.client, response.json()["id"], admin, timeout=600)
    assert job["status"] == "finished", job
    conn = sqlite3.connect(world.settings.catalog_path)
    where = "WHERE collection_id = (SELECT id FROM collections WHERE name = 'hostile')"
    faces = dict(conn.execute(f"SELECT path, face_count FROM images {where}"))
    errors = dict(conn.execute(f"SELECT path, reason FROM ingest_errors {where}"))
    conn.close()
    faces = {Path(p).name: n for p, n in faces.items()}
    errors = {Path(p).name: r for p, r in errors.items()}
    assert faces.keys() | errors.keys() == {c.name for c in cases}
    assert job["images"] == len(faces)
    for case in cases:
        if case.name in errors:
            assert errors[case.name].startswith(CLEAR_ERRORS), (case.name, errors[case.name])
            assert case.expect != FACES and case.phrase in errors[case.name], case.name
        else:
            assert case.expect != ERROR, case.name
            assert faces[case.name] or case.expect != FACES, case.name


def test_every_corpus_file_as_a_probe_gets_an_answer_or_a_clear_4xx(world, cases):
    investigator = world.as_("investigator")
    statuses = {}
    for case in cases:
        response = world.client.post(
            "/api/search", headers=investigator, data=PURPOSE,
            files={"photo": (case.name, case.data, "application/octet-stream")},
        )  # fmt: skip
        statuses[case.name] = response.status_code
        assert response.status_code < 500, (case.name, response.text)
        if response.status_code == 200:
            assert case.expect != ERROR, case.name
            assert response.json()["probe"]["faces"], case.name
            continue
        assert response.status_code in (400, 413, 415, 422), (case.name, response.text)
        detail = response.json()["detail"]
        assert detail.startswith(CLEAR_ERRORS) or detail == "no face was found in the probe photo"
        assert case.expect != FACES or response.status_code == 413, (case.name, detail)
    # The probe limit (40 megapixels) refuses the 100-megapixel file the archive limit allows.
    assert statuses["bomb_allowed.png"] == 413
    assert sum(1 for s in statuses.values() if s == 200) >= 70
