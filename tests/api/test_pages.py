"""The web pages: log in with a form, land on the right page, log out; roles see their pages."""

from __future__ import annotations

import re

import pytest
from apiworld import PASSWORD


@pytest.fixture
def browser(world):
    world.client.cookies.clear()
    yield world.client
    world.client.cookies.clear()


def _log_in(client, username, next_page="/"):
    return client.post(
        "/login", data={"username": username, "password": PASSWORD, "next": next_page},
        headers={"Origin": "http://testserver"}, follow_redirects=False,
    )  # fmt: skip


def test_login_form_sets_the_session_and_goes_where_the_person_wanted(browser):
    page = browser.get("/login?next=/collections")
    assert page.status_code == 200 and 'name="password"' in page.text
    assert 'value="/collections"' in page.text
    answer = _log_in(browser, "investigator", "/collections")
    assert answer.status_code == 303 and answer.headers["location"] == "/collections"
    assert "HttpOnly" in answer.headers["set-cookie"]
    collections = browser.get("/collections")
    assert collections.status_code == 200 and "Collections" in collections.text
    assert collections.headers["cache-control"] == "no-store"
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', collections.text).group(1)
    assert len(csrf) > 30
    # The investigator sees search and collections, not the people page.
    nav = re.findall(r'<a href="(/\w+)"', collections.text)
    assert nav == ["/search", "/people", "/collections", "/account"]
    assert browser.get("/admin").status_code == 403
    assert browser.get("/", follow_redirects=False).headers["location"] == "/search"

    refused = browser.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False)
    assert refused.status_code == 403
    out = browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert browser.get("/search", follow_redirects=False).status_code == 303


def test_wrong_password_foreign_origin_and_open_redirects_are_refused(browser):
    wrong = browser.post(
        "/login", data={"username": "auditor", "password": "nope"}, follow_redirects=False
    )
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text
    foreign = browser.post(
        "/login", data={"username": "auditor", "password": PASSWORD},
        headers={"Origin": "https://evil.example"}, follow_redirects=False,
    )  # fmt: skip
    assert foreign.status_code == 403 and "facesearch_session" not in foreign.headers.get(
        "set-cookie", ""
    )
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        answer = _log_in(browser, "auditor", target)
        assert answer.headers["location"] == "/", target
        browser.cookies.clear()


@pytest.mark.parametrize(
    ("role", "landing", "pages"),
    [
        ("administrator", "/collections", ["/collections", "/admin", "/account"]),
        (
            "supervisor",
            "/search",
            ["/search", "/people", "/collections", "/admin", "/oversight", "/account"],
        ),
        ("auditor", "/collections", ["/collections", "/admin", "/oversight", "/account"]),
    ],
)
def test_each_role_lands_on_its_first_page_and_sees_its_menu(browser, role, landing, pages):
    _log_in(browser, role)
    assert browser.get("/", follow_redirects=False).headers["location"] == landing
    for page in pages:
        assert browser.get(page).status_code == 200, page
    if "/search" not in pages:
        assert browser.get("/search").status_code == 403
    if "/oversight" not in pages:
        assert browser.get("/oversight").status_code == 403
    if "/people" not in pages:  # persons are faces: not for those who never see one
        assert browser.get("/people").status_code == 403


def test_a_one_time_password_leads_to_the_account_page(world, browser):
    services = world.services
    _, password = services.auth.create_user(
        "newbie", services.accounts.organisation_named("default").id, "investigator"
    )
    answer = browser.post(
        "/login", data={"username": "newbie", "password": password, "next": "/search"},
        follow_redirects=False,
    )  # fmt: skip
    assert answer.headers["location"] == "/account"
    assert browser.get("/search", follow_redirects=False).headers["location"] == "/account"
    assert "one-time password" in browser.get("/account").text
