"""Browser sessions (cookie + CSRF), passwords, tokens and expiry through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apiworld import PASSWORD, build_app, make_settings
from fastapi.testclient import TestClient

from facesearch.governance.auth import Role


@pytest.fixture
def app_client(tmp_path, cache_dir, analyzer):
    app = build_app(make_settings(tmp_path, cache_dir), analyzer)
    with TestClient(app) as client:
        yield app.state.services, client


def _login(client, username, password=PASSWORD):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_session_cookie_is_httponly_strict_and_unsafe_requests_need_the_csrf_token(app_client):
    services, client = app_client
    org = services.accounts.organisation_named("default").id
    services.auth.create_user("ann", org, Role.ADMINISTRATOR, PASSWORD, must_change_password=False)
    answer = _login(client, "ann")
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert "facesearch_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    csrf = answer.json()["csrf_token"]
    me = client.get("/api/auth/me").json()
    assert (
        me["username"] == "ann" and me["via"] == "session" and "users:manage" in me["permissions"]
    )

    body = {"name": "x", "source": "s", "legal_basis": "l"}
    refused = client.post("/api/collections", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = client.post("/api/collections", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert (
        client.post("/api/collections", json=body, headers={"X-CSRF-Token": csrf}).status_code
        == 201
    )

    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/auth/me").status_code == 401


def test_wrong_password_unknown_user_and_malformed_requests(app_client):
    services, client = app_client
    org = services.accounts.organisation_named("default").id
    services.auth.create_user("bob", org, Role.INVESTIGATOR, PASSWORD, must_change_password=False)
    for name, password in (("bob", "not the password"), ("nobody", PASSWORD)):
        answer = _login(client, name, password)
        assert answer.status_code == 401 and answer.json() == {
            "detail": "wrong username or password"
        }
    missing = client.post("/api/auth/login", json={"username": "bob"})
    assert missing.status_code == 422 and "password" in missing.json()["detail"]
    assert client.get("/api/auth/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert (
        client.get("/api/auth/me", headers={"Authorization": "Bearer fs_nope"}).status_code == 401
    )


def test_one_time_password_must_be_changed_first(app_client):
    services, client = app_client
    org = services.accounts.organisation_named("default").id
    _, one_time = services.auth.create_user("cat", org, Role.INVESTIGATOR)
    csrf = _login(client, "cat", one_time).json()["csrf_token"]
    blocked = client.get("/api/collections")
    assert blocked.status_code == 403 and "one-time password" in blocked.json()["detail"]
    headers = {"X-CSRF-Token": csrf}
    weak = client.post(
        "/api/auth/password", json={"current_password": one_time, "new_password": "short"},
        headers=headers,
    )  # fmt: skip
    assert weak.status_code == 400 and "at least 10" in weak.json()["detail"]
    wrong = client.post(
        "/api/auth/password", json={"current_password": "nope", "new_password": PASSWORD},
        headers=headers,
    )  # fmt: skip
    assert wrong.status_code == 401
    changed = client.post(
        "/api/auth/password", json={"current_password": one_time, "new_password": PASSWORD},
        headers=headers,
    )  # fmt: skip
    assert changed.status_code == 200 and not changed.json()["must_change_password"]
    # The session was renewed with a new CSRF token; the old one no longer works.
    renewed = changed.headers["X-CSRF-Token"]
    assert renewed != csrf
    assert client.get("/api/collections").status_code == 200
    assert _login(client, "cat", one_time).status_code == 401


def test_trial_account_stops_working_at_its_end_date(app_client):
    services, client = app_client
    org = services.accounts.organisation_named("default").id
    user, _ = services.auth.create_user(
        "trial", org, Role.INVESTIGATOR, PASSWORD, must_change_password=False,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    secret, _ = services.auth.create_token(user, "script")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert _login(client, "trial").status_code == 200
    assert client.get("/api/collections", headers=bearer).status_code == 200
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    services.accounts.update_user(user.id, expires_at=past)
    answer = _login(client, "trial")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    assert client.get("/api/collections").status_code == 401  # the open session
    assert client.get("/api/collections", headers=bearer).status_code == 401
