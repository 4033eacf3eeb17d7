"""Audit completeness over the API (issue 18): each governed action is exactly one
audit entry, no more and no fewer, counted per action over the whole log."""

from __future__ import annotations

from collections import Counter

from apiworld import PASSWORD, PURPOSE


def _actions(world) -> Counter:
    entries = world.services.audit.store.query(None, limit=1_000_000)
    return Counter(e.action for e in entries)


def _one(world, action: str, call) -> object:
    before = _actions(world)
    answer = call()
    assert answer.status_code < 300, answer.text
    assert _actions(world) - before == Counter({action: 1}), (action, answer.request.url)
    return answer


def test_each_governed_action_is_exactly_one_audit_entry(world, wild):
    client = world.client
    supervisor, admin = world.as_("supervisor"), world.as_("administrator")
    photo = (wild / "img4.jpg").read_bytes()

    found = _one(world, "search", lambda: client.post(
        "/api/search", files={"photo": ("p.jpg", photo, "image/jpeg")}, data=PURPOSE,
        headers=supervisor,
    )).json()  # fmt: skip
    face = found["matches"][0]["face_id"]
    _one(world, "search", lambda: client.post(
        "/api/search", data={"face_id": str(face), **PURPOSE}, headers=supervisor))  # fmt: skip

    _one(world, "login", lambda: client.post(
        "/api/auth/login", json={"username": "auditor", "password": PASSWORD}))  # fmt: skip
    client.cookies.clear()
    before = _actions(world)
    wrong = client.post("/api/auth/login", json={"username": "auditor", "password": "wrong!"})
    assert wrong.status_code == 401 and _actions(world) - before == Counter({"login_failed": 1})

    account = {"username": "counted", "role": "investigator"}
    made = _one(world, "account", lambda: client.post("/api/users", json=account, headers=admin))
    user = made.json()["id"]
    _one(world, "account", lambda: client.patch(
        f"/api/users/{user}", json={"role": "auditor"}, headers=admin))  # fmt: skip
    token = _one(world, "account", lambda: client.post(
        "/api/tokens", json={"name": "counted"}, headers=supervisor)).json()  # fmt: skip
    _one(world, "account", lambda: client.delete(f"/api/tokens/{token['id']}", headers=supervisor))

    _one(world, "export", lambda: client.get(
        "/api/audit", params={"format": "csv"}, headers=world.as_("auditor")))  # fmt: skip
    _one(world, "erase", lambda: client.post(
        "/api/rights/erasures", json={"face_ids": [face], "reference": "ER-7"},
        headers=supervisor,
    ))  # fmt: skip
