"""Purpose-bound search, the audit log, oversight and data-subject rights over the API."""

from __future__ import annotations

import hashlib
import time

from apiworld import PASSWORD, PURPOSE, build_app, make_settings, upload, wait_for_job
from fastapi.testclient import TestClient

from facesearch.config import GovernanceSettings
from facesearch.governance.audit import Who
from facesearch.governance.rights import purge_expired_pending
from facesearch.store.database import connect

PERSON = "Aaron_Peirsol"


def _search(world, who, photo: bytes, **fields):
    return world.client.post(
        "/api/search", files={"photo": ("probe.jpg", photo, "image/jpeg")},
        data={k: str(v) for k, v in fields.items()}, headers=world.as_(who),
    )  # fmt: skip


def _entries(world, **filters) -> list[dict]:
    answer = world.client.get("/api/audit", params=filters, headers=world.as_("supervisor"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_search_without_purpose_or_case_is_refused_and_the_refusal_logged(world, wild):
    photo = (wild / "img2.jpg").read_bytes()
    none = _search(world, "investigator", photo)
    assert none.status_code == 400 and "needs a purpose" in none.json()["detail"]
    assert "missing person" in none.json()["detail"]  # the allowed purposes are named
    no_case = _search(world, "investigator", photo, purpose="missing person")
    assert no_case.status_code == 400 and "case reference" in no_case.json()["detail"]
    unknown = _search(world, "investigator", photo, purpose="curiosity", case="X")
    assert unknown.status_code == 400 and "not allowed" in unknown.json()["detail"]
    by_face = world.client.post("/api/search", data={"face_id": "1"},
                                headers=world.as_("investigator"))  # fmt: skip
    assert by_face.status_code == 400
    refused = _entries(world, action="search_refused")
    assert len(refused) >= 4 and all(e["actor"] == "investigator" for e in refused)


def test_an_auditor_reads_the_log_but_cannot_search(world, wild):
    photo = (wild / "img2.jpg").read_bytes()
    answer = _search(world, "auditor", photo, **PURPOSE)
    assert answer.status_code == 403
    assert world.client.get("/api/audit", headers=world.as_("auditor")).status_code == 200
    assert world.client.get("/api/audit", headers=world.as_("investigator")).status_code == 403
    assert world.client.get("/api/audit", headers=world.as_("administrator")).status_code == 403


def test_a_search_is_logged_with_probe_hash_faces_and_verification_decisions(world, wild):
    photo = (wild / "img2.jpg").read_bytes()
    answer = _search(world, "investigator", photo, top=3, authorisation="AUTH-1", **PURPOSE)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["purpose"] == "missing person" and result["case"] == "MP-2024-17"
    entry = next(e for e in _entries(world, action="search") if e["seq"] == result["search_id"])
    details = entry["details"]
    assert details["face_ids"] == [m["face_id"] for m in result["matches"]]
    assert details["probe_sha256"] == hashlib.sha256(photo).hexdigest()
    assert details["authorisation"] == "AUTH-1" and details["collections"] == ["press"]
    assert entry["actor"] == "investigator" and entry["origin"] == "testclient"

    first = result["matches"][0]["face_id"]
    url = f"/api/search/{result['search_id']}/verifications"
    decided = world.client.post(url, json={"face_id": first, "decision": "confirmed"},
                                headers=world.as_("investigator"))  # fmt: skip
    assert decided.status_code == 201, decided.text
    verification = decided.json()
    assert verification["decided_by"] == "investigator" and verification["final"]
    not_a_match = world.client.post(url, json={"face_id": 999999, "decision": "rejected"},
                                    headers=world.as_("investigator"))  # fmt: skip
    assert not_a_match.status_code == 404
    foreign = world.client.post(url, json={"face_id": first, "decision": "rejected"},
                                headers=world.as_("outsider"))  # fmt: skip
    assert foreign.status_code == 404
    confirm = f"/api/search/verifications/{verification['id']}/confirm"
    same = world.client.post(confirm, headers=world.as_("investigator"))
    assert same.status_code == 403 and "another person" in same.json()["detail"]
    second = world.client.post(confirm, headers=world.as_("supervisor"))
    assert second.status_code == 200 and second.json()["confirmed_by"] == "supervisor"
    verified = _entries(world, action="verify")
    assert {e["details"]["search_seq"] for e in verified} >= {result["search_id"]}


def test_every_action_lands_in_the_log_and_the_chain_verifies(world, wild):
    client = world.client
    assert client.post("/api/auth/login", json={"username": "auditor", "password": "wrong pw!"}
                       ).status_code == 401  # fmt: skip
    assert client.post("/api/auth/login", json={"username": "auditor", "password": PASSWORD}
                       ).status_code == 200  # fmt: skip
    client.cookies.clear()
    image = world.services.catalog.images(limit=1)[0]["id"]
    assert client.get(f"/api/images/{image}/file", headers=world.as_("investigator")).is_success
    made = client.post("/api/tokens", json={"name": "n"}, headers=world.as_("investigator"))
    assert made.status_code == 201
    admin = world.as_("administrator")
    client.post("/api/collections", json={"name": "logged", "source": "s", "legal_basis": "b"},
                headers=admin)  # fmt: skip
    job = upload(client, "logged", [wild / "img1.jpg"], admin).json()
    wait_for_job(client, job["id"], admin)
    _search(world, "supervisor", (wild / "img2.jpg").read_bytes(), **PURPOSE)

    actions = {e["action"] for e in _entries(world, limit=10_000)}
    assert {"login", "login_failed", "view", "account", "collection", "ingest",
            "ingest_finished", "search"} <= actions  # fmt: skip
    csv = client.get("/api/audit", params={"format": "csv"}, headers=world.as_("auditor"))
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("seq,at,actor")
    assert "export" in {e["action"] for e in _entries(world)}
    check = client.get("/api/audit/verify", headers=world.as_("auditor")).json()
    assert check["ok"] and check["entries_checked"] >= 10

    report = client.get("/api/audit/report", headers=world.as_("supervisor")).json()
    assert report["usage"]["by_user"]["supervisor"] >= 1
    assert report["transparency"]["searches"] >= 1 and "press" in report[
        "transparency"]["collections"]  # fmt: skip
    assert any(f["flag"] == "no_follow_up" for f in report["anomalies"])
    # Another organisation sees none of it.
    outsider = client.get("/api/audit", headers=world.as_("outsider"))
    assert outsider.status_code == 403


def test_access_report_and_erasure_over_the_api_block_the_person(world, lfw):
    client = world.client
    admin, supervisor = world.as_("administrator"), world.as_("supervisor")
    client.post("/api/collections", json={"name": "rights", "source": "LFW", "legal_basis": "t"},
                headers=admin)  # fmt: skip
    job = upload(client, "rights", [lfw / PERSON / f"{PERSON}_0001.jpg"], admin).json()
    assert wait_for_job(client, job["id"], admin)["faces"] == 1
    probe = (lfw / PERSON / f"{PERSON}_0003.jpg").read_bytes()
    report = client.post(
        "/api/rights/access", files={"photo": ("p.jpg", probe, "image/jpeg")},
        data={"reference": "DSR-1", "received_at": "2026-01-02T09:00:00Z"}, headers=supervisor,
    )  # fmt: skip
    assert report.status_code == 200, report.text
    faces = report.json()["faces"]
    assert [f["collection"] for f in faces] == ["rights"]
    face_id = faces[0]["face_id"]
    assert client.post("/api/rights/access", files={"photo": ("p.jpg", probe)},
                       data={"reference": "x"}, headers=world.as_("investigator")
                       ).status_code == 403  # fmt: skip

    erased = client.post("/api/rights/erasures", json={"face_ids": [face_id], "reference": "DSR-1"},
                         headers=supervisor)  # fmt: skip
    assert erased.status_code == 200 and erased.json()["blocklisted"] == 1
    after = _search(world, "supervisor", probe, top=5, **PURPOSE).json()
    assert face_id not in [m["face_id"] for m in after["matches"]]
    assert client.get(f"/api/faces/{face_id}/thumbnail", headers=supervisor).status_code == 404

    again = upload(client, "rights", [lfw / PERSON / f"{PERSON}_0002.jpg"], admin).json()
    done = wait_for_job(client, again["id"], admin)
    assert done["status"] == "finished" and done["faces"] == 0
    finished = [e for e in _entries(world, action="ingest_finished")
                if e["details"]["collection"] == "rights"]  # fmt: skip
    assert finished[0]["details"]["blocked"] == 1
    transparency = client.get("/api/audit/report", headers=supervisor).json()["transparency"]
    assert transparency["erasures"] == 1 and transparency["access_requests"] == 1
    assert transparency["ingest_faces_refused_by_blocklist"] == 1


def test_tampering_is_reported_by_the_api(tmp_path, cache_dir, analyzer):
    settings = make_settings(tmp_path, cache_dir)
    app = build_app(settings, analyzer)
    with TestClient(app) as client:
        services = app.state.services
        org = services.accounts.organisation_named("default")
        user, _ = services.auth.create_user("aud", org.id, "auditor", PASSWORD,
                                            must_change_password=False)  # fmt: skip
        secret, _ = services.auth.create_token(user, "t")
        headers = {"Authorization": f"Bearer {secret}"}
        for _ in range(3):
            client.post("/api/auth/login", json={"username": "aud", "password": "nope nope"})
        assert client.get("/api/audit/verify", headers=headers).json()["ok"]
        conn = connect(settings.catalog_location)
        conn.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = 2")
        conn.close()
        broken = client.get("/api/audit/verify", headers=headers).json()
        assert not broken["ok"] and broken["broken_seq"] == 2


def test_a_pending_authorisation_must_come_in_time_or_the_results_are_purged(
    tmp_path, cache_dir, analyzer, wild
):
    governance = GovernanceSettings(
        require_authorisation=True,
        pending_authorisation_hours=0.0003,  # about one second
    )
    settings = make_settings(tmp_path, cache_dir).model_copy(update={"governance": governance})
    app = build_app(settings, analyzer)
    with TestClient(app) as client:
        services = app.state.services
        # As the routes do: the retention thread uses the same engine from its start.
        with services.write_lock:
            services.engine.create_collection("c", "wild", "test")
            services.engine.ingest([wild / "img1.jpg", wild / "img4.jpg"], "c")
        org = services.accounts.organisation_named("default")
        user, _ = services.auth.create_user("ines", org.id, "investigator", PASSWORD,
                                            must_change_password=False)  # fmt: skip
        headers = {"Authorization": f"Bearer {services.auth.create_token(user, 't')[0]}"}

        def search(authorisation: str | None):
            data = {**PURPOSE, **({"authorisation": authorisation} if authorisation else {})}
            return client.post(
                "/api/search",
                data=data,
                headers=headers,
                files={"photo": ("p.jpg", (wild / "img2.jpg").read_bytes(), "image/jpeg")},
            )

        refused = search(None)
        assert refused.status_code == 400 and "'pending'" in refused.json()["detail"]
        late, on_time = search("pending").json(), search("pending").json()
        for result in (late, on_time):
            face = result["matches"][0]["face_id"]
            decided = client.post(f"/api/search/{result['search_id']}/verifications",
                                  json={"face_id": face, "decision": "confirmed"},
                                  headers=headers)  # fmt: skip
            assert decided.status_code == 201
        given = client.post(f"/api/search/{on_time['search_id']}/authorisation",
                            json={"reference": "WARRANT-9"}, headers=headers)  # fmt: skip
        assert given.status_code == 201
        time.sleep(1.5)
        audit = services.audit
        assert purge_expired_pending(audit, Who("server", None, "server"), 0.0003) == [
            late["search_id"]
        ]
        assert audit.store.delete_verifications(late["search_id"]) == 0  # already purged
        assert audit.store.delete_verifications(on_time["search_id"]) == 1
        too_late = client.post(f"/api/search/{late['search_id']}/authorisation",
                               json={"reference": "WARRANT-10"}, headers=headers)  # fmt: skip
        assert too_late.status_code == 409 and "purged" in too_late.json()["detail"]
        assert audit.verify().ok
