"""Failed logins lock the account name and the client address for a while: 429 with
Retry-After, the lock-out is audited, and an administrator can lift it."""

from __future__ import annotations

import pytest
from apiworld import PASSWORD, build_app, make_settings
from fastapi.testclient import TestClient

from facesearch.governance.auth import Role

LIMITS = {"login_max_failures": 3, "login_max_failures_per_address": 6,
          "login_window_minutes": 10, "lockout_minutes": 5}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def throttled(tmp_path, cache_dir, analyzer):
    app = build_app(make_settings(tmp_path, cache_dir, **LIMITS), analyzer)
    with TestClient(app) as client:
        services = app.state.services
        clock = Clock()
        services.throttle.clock = clock
        org = services.accounts.organisation_named("default").id
        for name, role in (("ann", Role.INVESTIGATOR), ("root", Role.ADMINISTRATOR)):
            services.auth.create_user(name, org, role, PASSWORD, must_change_password=False)
        yield services, client, clock


def _login(client, username, password=PASSWORD, address="10.0.0.1"):
    # The client address the server sees comes from the connection; TestClient
    # lets a test choose it per client, so each address gets a client of its own.
    other = TestClient(client.app, client=(address, 50000))
    return other.post("/api/auth/login", json={"username": username, "password": password})


def _audit(services, action):
    return [e for e in services.audit.store.query(None, action=action, limit=100)]


def test_an_account_name_locks_after_repeated_failures_until_an_administrator_unlocks_it(
    throttled,
):
    services, client, clock = throttled
    for _ in range(LIMITS["login_max_failures"]):
        assert _login(client, "ann", "wrong password").status_code == 401
    # Now even the right password is refused, from any address.
    locked = _login(client, "ann", address="10.0.0.2")
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(LIMITS["lockout_minutes"] * 60)
    assert "too many failed logins for this account" in locked.json()["detail"]
    # The lock is audited under the account's organisation, naming the account.
    locks = _audit(services, "login_locked")
    assert len(locks) == 1 and '"key":"ann"' in locks[0].details.replace(" ", "")
    assert locks[0].organisation_id == services.accounts.user_named("ann").organisation_id
    clock.now += 60
    assert int(_login(client, "ann").headers["retry-after"]) == 240

    root = _login(client, "root", address="10.0.0.9")
    assert root.status_code == 200
    csrf = {"X-CSRF-Token": root.json()["csrf_token"]}
    admin = TestClient(client.app, client=("10.0.0.9", 50000), cookies=root.cookies)
    ann = services.accounts.user_named("ann").id
    lifted = admin.post(f"/api/users/{ann}/unlock", headers=csrf)
    assert lifted.status_code == 200 and lifted.json() == {"username": "ann", "was_locked": True}
    assert _login(client, "ann").status_code == 200
    assert any("login lock lifted" in e.details for e in _audit(services, "account"))


def test_a_lock_ends_by_itself_and_unknown_names_lock_the_same_way(throttled):
    services, client, clock = throttled
    # A name no account has answers exactly as a real one: no way to tell them apart.
    answered = []
    for name, address in (("ann", "10.0.1.1"), ("nobody", "10.0.1.2")):
        answers = [_login(client, name, "wrong password", address=address)
                   for _ in range(LIMITS["login_max_failures"] + 1)]  # fmt: skip
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        answered.append([(a.json(), a.headers.get("retry-after")) for a in answers])
    assert answered[0] == answered[1]
    clock.now += LIMITS["lockout_minutes"] * 60 + 1
    assert _login(client, "ann", address="10.0.1.2").status_code == 200
    # The name typed is not kept when no account has it (it may be a password).
    failed = _audit(services, "login_failed")
    assert failed and not any("nobody" in e.details for e in failed)
    assert any('"unknown:' in e.details for e in failed)


def test_failures_spread_over_a_window_do_not_lock(throttled):
    _services, client, clock = throttled
    for _ in range(LIMITS["login_max_failures"] * 2):
        assert _login(client, "ann", "wrong password").status_code == 401
        clock.now += LIMITS["login_window_minutes"] * 60 / 2 + 1
    assert _login(client, "ann").status_code == 200


def test_one_address_trying_many_names_is_locked_out_but_other_addresses_are_not(throttled):
    services, client, _clock = throttled
    for n in range(LIMITS["login_max_failures_per_address"]):
        assert _login(client, f"guess{n}", "password123", address="10.6.6.6").status_code == 401
    refused = _login(client, "ann", address="10.6.6.6")
    assert refused.status_code == 429 and "your address" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) == LIMITS["lockout_minutes"] * 60
    assert _login(client, "ann", address="10.0.0.7").status_code == 200
    assert [e for e in _audit(services, "login_locked") if '"address"' in e.details]


def test_the_login_form_and_the_password_change_count_failures_too(throttled):
    services, client, _clock = throttled
    browser = TestClient(client.app, client=("10.0.2.1", 50000))
    for _ in range(LIMITS["login_max_failures"]):
        page = browser.post(
            "/login", data={"username": "ann", "password": "nope"}, follow_redirects=False
        )
        assert page.status_code == 401
    page = browser.post(
        "/login", data={"username": "ann", "password": PASSWORD}, follow_redirects=False
    )
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert "too many failed logins" in page.text
    assert len(_audit(services, "login_failed")) == LIMITS["login_max_failures"]

    # Someone holding root's session cannot guess root's password through the form
    # that changes it.
    root = _login(client, "root", address="10.0.2.2")
    stolen = TestClient(client.app, client=("10.0.2.2", 50000), cookies=root.cookies)
    stolen.headers["X-CSRF-Token"] = root.json()["csrf_token"]
    body = {"current_password": "guess number one", "new_password": "a new password 1"}
    codes = [stolen.post("/api/auth/password", json=body).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
