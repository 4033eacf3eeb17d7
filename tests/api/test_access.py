"""Who may call what: every endpoint with no credentials, and each role's answers."""

from __future__ import annotations

import re

import pytest
from apiworld import PURPOSE, ROLES
from fastapi.routing import APIRoute

from facesearch.api.app import ROUTERS

ANONYMOUS_OK = {
    "/health",
    "/api/auth/login",
    "/login",
    "/logout",
    "/",
    "/search",
    "/collections",
    "/admin",
    "/oversight",
    "/account",
    "/people",
    "/people/{person_id}",
}


def _concrete(path: str) -> str:
    values = {"name": "press", "user_id": "1", "token_id": "1"}
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "1"), path)


def test_nothing_but_health_and_the_login_page_answers_without_credentials(world):
    client = world.client
    client.cookies.clear()
    checked = 0
    for route in (r for router in ROUTERS for r in router.routes):
        if not isinstance(route, APIRoute) or route.path in ANONYMOUS_OK:
            continue
        for method in route.methods - {"HEAD"}:
            answer = client.request(method, _concrete(route.path))
            assert answer.status_code == 401, (method, route.path, answer.status_code)
            assert answer.json()["detail"].startswith("log in first")
            assert answer.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 30
    assert client.get("/health").json() == {"status": "ok"}
    # Pages send a person to the login page instead.
    for page in (
        "/search",
        "/collections",
        "/admin",
        "/oversight",
        "/account",
        "/people",
        "/people/1",
    ):
        answer = client.get(page, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def _image_and_face(world) -> tuple[int, int]:
    catalog = world.services.catalog
    image = catalog.images(catalog.collection("press"), 1)[0]["id"]
    face = catalog.face_list(image, 1)[0]["id"]
    return image, face


def _cases(world, role: str, photo: bytes):
    image, face = _image_and_face(world)
    allowed_root = world.settings.api.allowed_roots[0]
    yield "GET", "/api/collections", {}, set(ROLES)
    yield (
        "POST",
        "/api/collections",
        {"json": {"name": f"m-{role}", "source": "s", "legal_basis": "l"}},
        {"administrator"},
    )
    yield "GET", "/api/collections/press", {}, set(ROLES)
    yield "PATCH", "/api/collections/press", {"json": {"retention_days": 400}}, {"administrator"}
    yield "DELETE", "/api/collections/absent", {}, {"administrator"}
    searchers = {"supervisor", "investigator"}
    ingesters = searchers | {"administrator"}
    yield (
        "POST",
        "/api/collections/press/uploads",
        {"files": [("files", ("notes.txt", b"x"))]},
        ingesters,
    )
    yield "GET", "/api/jobs", {}, set(ROLES)
    yield (
        "POST",
        "/api/jobs",
        {"json": {"collection": "press", "paths": [str(allowed_root / "none")]}},
        ingesters,
    )
    yield "GET", "/api/jobs/1", {}, set(ROLES)
    yield "GET", "/api/jobs/1/events", {}, set(ROLES)
    yield "DELETE", "/api/jobs/1", {}, ingesters
    yield (
        "POST",
        "/api/search",
        {"files": {"photo": ("p.jpg", photo)}, "data": {"top": "2", **PURPOSE}},
        searchers,
    )
    yield "POST", "/api/search", {"data": {"face_id": str(face), **PURPOSE}}, searchers
    yield "GET", "/api/images?collection=press", {}, searchers
    yield "GET", f"/api/images/{image}", {}, searchers
    yield "GET", f"/api/images/{image}/file", {}, searchers
    yield "GET", f"/api/faces/{face}", {}, searchers
    yield "GET", f"/api/faces/{face}/thumbnail", {}, searchers
    readers = {"administrator", "supervisor", "auditor"}
    yield "GET", "/api/organisations", {}, readers
    yield "POST", "/api/organisations", {"json": {"name": f"org of {role}"}}, {"administrator"}
    yield "GET", "/api/users", {}, readers
    yield "GET", f"/api/users/{world.user_ids['investigator']}", {}, readers
    yield (
        "POST",
        "/api/users",
        {"json": {"username": f"new-{role}", "role": "auditor"}},
        {"administrator"},
    )
    yield "PATCH", f"/api/users/{world.user_ids['outsider']}", {"json": {}}, {"administrator"}
    yield "GET", "/api/tokens", {}, set(ROLES)
    yield "GET", "/api/tokens?all=true", {}, {"administrator"}
    yield "POST", "/api/tokens", {"json": {"name": f"t-{role}"}}, set(ROLES)
    yield "GET", "/api/auth/me", {}, set(ROLES)
    yield "GET", "/api/version", {}, set(ROLES)
    yield "GET", "/metrics", {}, {"administrator", "auditor"}
    yield "GET", "/openapi.json", {}, set(ROLES)
    yield "GET", "/docs", {}, set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_the_table_allows(world, wild, role):
    photo = (wild / "img2.jpg").read_bytes()
    headers = world.as_(role)
    count = 0
    for method, path, kwargs, allowed in _cases(world, role, photo):
        answer = world.client.request(method, path, headers=headers, **kwargs)
        if role in allowed:
            assert answer.status_code not in (401, 403), (role, method, path, answer.text)
            assert answer.status_code < 500, (role, method, path, answer.text)
        else:
            assert answer.status_code == 403, (role, method, path, answer.status_code)
            assert f"the {role} role does not allow" in answer.json()["detail"]
        count += 1
    assert count == 32
