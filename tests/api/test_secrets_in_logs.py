"""No secret reaches a log: every log record (at DEBUG), everything printed and the
whole audit log are searched for the passwords, tokens, session ids, CSRF tokens and
keys used while people log in, fail to, make tokens and accounts, and search."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3

from apiworld import PASSWORD, PURPOSE, upload, wait_for_job
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.config import ApiSettings, CryptoSettings, Settings
from facesearch.engine import Engine
from facesearch.governance.auth import Role
from facesearch.storage import open_catalog

NEW_PASSWORD = "a quite different one 42"
NEAR_MISS = "correct horse battery!"  # a wrong password is someone's password too


def test_no_password_token_session_csrf_token_or_key_is_logged(
    tmp_path, cache_dir, analyzer, wild, caplog, capfd
):
    master_key = base64.b64encode(os.urandom(32)).decode()
    audit_key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(
        data_dir=tmp_path / "data", cache_dir=cache_dir, workers=1, api=ApiSettings(),
        crypto=CryptoSettings(master_key=master_key, audit_key=audit_key),
    )  # fmt: skip
    caplog.set_level(logging.DEBUG)
    engine = Engine(settings, open_catalog(settings), analyzer)
    app = create_app(settings, engine=engine)
    secrets = {"password": PASSWORD, "new password": NEW_PASSWORD, "near miss": NEAR_MISS,
               "master key": master_key, "audit key": audit_key}  # fmt: skip
    with TestClient(app) as client:
        services = app.state.services
        org = services.accounts.organisation_named("default").id
        services.auth.create_user("amy", org, Role.ADMINISTRATOR, PASSWORD,
                                  must_change_password=False)  # fmt: skip
        services.auth.create_user("ian", org, Role.INVESTIGATOR, PASSWORD,
                                  must_change_password=False)  # fmt: skip

        # Failed logins: a near miss, and a password typed into the name field.
        assert (
            client.post(
                "/api/auth/login", json={"username": "amy", "password": NEAR_MISS}
            ).status_code
            == 401
        )
        assert (
            client.post(
                "/api/auth/login", json={"username": PASSWORD, "password": "amy"}
            ).status_code
            == 401
        )
        assert client.post("/login", data={"username": NEAR_MISS, "password": PASSWORD},
                           follow_redirects=False).status_code == 401  # fmt: skip

        logged_in = client.post("/api/auth/login", json={"username": "amy", "password": PASSWORD})
        assert logged_in.status_code == 200
        secrets["session id"] = logged_in.cookies["facesearch_session"]
        secrets["csrf token"] = logged_in.json()["csrf_token"]
        csrf = {"X-CSRF-Token": secrets["csrf token"]}

        made = client.post("/api/tokens", json={"name": "script"}, headers=csrf)
        assert made.status_code == 201
        secrets["admin token"] = made.json()["token"]
        new_user = client.post("/api/users", json={"username": "otto", "role": "investigator"},
                               headers=csrf)  # fmt: skip
        assert new_user.status_code == 201
        secrets["one-time password"] = new_user.json()["one_time_password"]
        client.post("/api/collections", headers=csrf,
                    json={"name": "press", "source": "s", "legal_basis": "l"})  # fmt: skip
        job = upload(client, "press", [wild / "img1.jpg", wild / "img3.jpg"], csrf).json()
        wait_for_job(client, job["id"], csrf)

        changed = client.post(
            "/api/auth/password",
            headers=csrf,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 200  # fmt: skip
        secrets["renewed csrf token"] = changed.headers["x-csrf-token"]
        secrets["renewed session id"] = changed.cookies["facesearch_session"]

        ian = client.post("/api/auth/login", json={"username": "ian", "password": PASSWORD})
        secrets["second session id"] = ian.cookies["facesearch_session"]
        client.cookies.clear()
        token = services.auth.create_token(services.accounts.user_named("ian"), "cli")[0]
        secrets["investigator token"] = token
        bearer = {"Authorization": f"Bearer {token}"}
        photo = (wild / "img4.jpg").read_bytes()
        found = client.post("/api/search", files={"photo": ("p.jpg", photo)},
                            data={"top": "3", **PURPOSE}, headers=bearer)  # fmt: skip
        assert found.status_code == 200 and found.json()["matches"]
        face = found.json()["matches"][0]["face_id"]
        by_face = client.post("/api/search", data={"face_id": str(face), **PURPOSE},
                              headers=bearer)  # fmt: skip
        assert by_face.status_code == 200
        # A bad token is a secret too (a real one with a typo, say).
        wrong = token[:-3] + "xyz"
        secrets["mistyped token"] = wrong
        assert (
            client.get("/api/auth/me", headers={"Authorization": f"Bearer {wrong}"}).status_code
            == 401
        )
        # Something went wrong somewhere (exceptions are logged with their context).
        assert client.get("/api/images/999999", headers=bearer).status_code == 404

    records = caplog.records
    assert records, "the test must see the log"
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}" for r in records
    )
    out, err = capfd.readouterr()
    with sqlite3.connect(settings.catalog_path) as db:
        audit = "\n".join(repr(row) for row in db.execute("SELECT * FROM audit_log"))
        failed = db.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'login_failed'")
        assert failed.fetchone()[0] == 3
    assert "login_failed" in audit and "search" in audit
    for where, text in (("logs", logged), ("printed", out + err), ("audit log", audit)):
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} appears in the {where}"
            if name.endswith("key"):
                assert base64.b64decode(secret).hex() not in text, f"the {name} in {where}"
