"""Organisations, accounts and API tokens: administrators create them, nobody signs up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_administrator_creates_accounts_with_one_time_passwords(world):
    client, admin = world.client, world.as_("administrator")
    other = next(
        o for o in client.get("/api/organisations", headers=admin).json()
        if o["name"] == "other agency"
    )  # fmt: skip
    ends = (datetime.now(UTC) + timedelta(days=14)).isoformat()
    created = client.post(
        "/api/users", headers=admin,
        json={"username": "gil", "role": "investigator", "organisation_id": other["id"],
              "expires_at": ends},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    gil = created.json()
    assert gil["organisation"] == "other agency" and gil["must_change_password"]
    assert len(gil["one_time_password"]) >= 12 and gil["expires_at"].startswith(ends[:10])
    assert "password_hash" not in gil

    client.cookies.clear()
    login = client.post(
        "/api/auth/login", json={"username": "gil", "password": gil["one_time_password"]}
    )
    assert login.status_code == 200 and login.json()["me"]["permissions"] == ["account"]
    client.cookies.clear()

    # A password chosen by the administrator is never echoed.
    chosen = client.post(
        "/api/users", headers=admin,
        json={"username": "hal", "role": "auditor", "password": "a chosen passphrase",
              "must_change_password": False},
    )  # fmt: skip
    assert chosen.status_code == 201 and chosen.json()["one_time_password"] is None

    duplicate = client.post(
        "/api/users", headers=admin, json={"username": "GIL", "role": "auditor"}
    )
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    bad_role = client.post("/api/users", headers=admin, json={"username": "x", "role": "root"})
    assert bad_role.status_code == 422 and "role" in bad_role.json()["detail"]
    no_org = client.post(
        "/api/users", headers=admin,
        json={"username": "y", "role": "auditor", "organisation_id": 9999},
    )  # fmt: skip
    assert no_org.status_code == 404
    past = client.post(
        "/api/users", headers=admin,
        json={"username": "z", "role": "auditor", "expires_at": "2001-01-01T00:00:00Z"},
    )  # fmt: skip
    assert past.status_code == 400 and "future" in past.json()["detail"]


def test_administrator_changes_disables_and_resets_accounts(world):
    client, admin = world.client, world.as_("administrator")
    user = client.post(
        "/api/users", headers=admin,
        json={"username": "ivy", "role": "investigator", "password": "a long passphrase for her",
              "must_change_password": False},
    ).json()  # fmt: skip
    url = f"/api/users/{user['id']}"
    assert (
        client.patch(url, headers=admin, json={"role": "supervisor"}).json()["role"] == "supervisor"
    )
    assert client.patch(url, headers=admin, json={"active": False}).json()["active"] is False
    assert client.post(
        "/api/auth/login", json={"username": "ivy", "password": "a long passphrase for her"}
    ).status_code == 401  # fmt: skip
    client.patch(url, headers=admin, json={"active": True})
    reset = client.patch(url, headers=admin, json={"reset_password": True}).json()
    assert reset["must_change_password"] and reset["one_time_password"]
    client.cookies.clear()
    assert client.post(
        "/api/auth/login", json={"username": "ivy", "password": reset["one_time_password"]}
    ).status_code == 200  # fmt: skip
    client.cookies.clear()
    ends = client.patch(url, headers=admin, json={"expires_at": "2099-01-01T00:00:00Z"}).json()
    assert ends["expires_at"] == "2099-01-01T00:00:00+00:00"
    assert client.patch(url, headers=admin, json={"expires_at": None}).json()["expires_at"] is None

    me = f"/api/users/{world.user_ids['administrator']}"
    for change in ({"role": "auditor"}, {"active": False}):
        answer = client.patch(me, headers=admin, json=change)
        assert answer.status_code == 409 and "own account" in answer.json()["detail"]
    assert client.patch("/api/users/9999", headers=admin, json={}).status_code == 404


def test_organisations_and_who_sees_which_accounts(world):
    client = world.client
    admin, supervisor = world.as_("administrator"), world.as_("supervisor")
    created = client.post("/api/organisations", headers=admin, json={"name": "Newsroom"})
    assert created.status_code == 201 and created.json()["name"] == "Newsroom"
    assert (
        client.post("/api/organisations", headers=admin, json={"name": "newsroom"}).status_code
        == 409
    )
    assert client.post("/api/organisations", headers=admin, json={"name": " "}).status_code == 422
    names = {o["name"] for o in client.get("/api/organisations", headers=admin).json()}
    assert {"default", "other agency", "Newsroom"} <= names
    assert [o["name"] for o in client.get("/api/organisations", headers=supervisor).json()] == [
        "default"
    ]
    everyone = {u["username"] for u in client.get("/api/users", headers=admin).json()}
    assert "outsider" in everyone
    mine = {u["organisation"] for u in client.get("/api/users", headers=supervisor).json()}
    assert mine == {"default"}
    outsider = world.user_ids["outsider"]
    assert client.get(f"/api/users/{outsider}", headers=supervisor).status_code == 404
    assert client.get(f"/api/users/{outsider}", headers=admin).status_code == 200


def test_tokens_are_shown_once_listed_by_prefix_and_revocable(world):
    client, investigator = world.client, world.as_("investigator")
    made = client.post("/api/tokens", headers=investigator, json={"name": "case tool", "days": 7})
    assert made.status_code == 201
    token = made.json()
    assert token["token"].startswith("fs_") and token["token"].startswith(token["prefix"])
    listed = client.get("/api/tokens", headers=investigator).json()
    assert any(t["id"] == token["id"] for t in listed)
    assert all("token" not in t for t in listed)
    bearer = {"Authorization": f"Bearer {token['token']}"}
    assert client.get("/api/auth/me", headers=bearer).json()["via"] == "token"
    # Someone else's token is not found; one's own is revoked at once.
    other = client.post("/api/tokens", headers=world.as_("auditor"), json={"name": "a"}).json()
    assert client.delete(f"/api/tokens/{other['id']}", headers=investigator).status_code == 404
    revoked = client.delete(f"/api/tokens/{token['id']}", headers=investigator)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    answer = client.get("/api/auth/me", headers=bearer)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    # Administrators may issue a token for another account and revoke anyone's.
    admin = world.as_("administrator")
    issued = client.post(
        "/api/tokens", headers=admin, json={"name": "svc", "user_id": world.user_ids["auditor"]}
    )
    assert issued.status_code == 201 and issued.json()["username"] == "auditor"
    assert client.delete(f"/api/tokens/{other['id']}", headers=admin).status_code == 200
    forged = client.post(
        "/api/tokens",
        headers=investigator,
        json={"name": "x", "user_id": world.user_ids["auditor"]},
    )
    assert forged.status_code == 403
    assert (
        client.post("/api/tokens", headers=investigator, json={"name": "x", "days": 0}).status_code
        == 422
    )
