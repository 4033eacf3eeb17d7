"""The web interface in real headless Chromium against the real server on 127.0.0.1.

Log in, drop a probe with two faces, click the second face, and see the expected person
first; open the match beside the probe. Screenshots go to test-output/browser/ (or
$FACESEARCH_TEST_OUTPUT) so a person can look at them.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from server import Server, first_login

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium)",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("FACESEARCH_TEST_OUTPUT", ROOT / "test-output")) / "browser"
PASSWORD = "correct horse battery"
STORED = ("img1.jpg", "img3.jpg", "img4.jpg", "img12.jpg", "selfie-many-people.jpg")


@pytest.fixture(scope="module")
def site(tmp_path_factory, cache_dir, wild):
    """The real server with collection 'press' and an investigator 'ines'."""
    server = Server(tmp_path_factory.mktemp("site") / "data", cache_dir)
    with server:
        admin = first_login(server, "correct horse battery staple")
        admin.post("/api/collections", json={
            "name": "press", "source": "deepface test photos", "legal_basis": "test fixture",
            "retention_days": 365,
        }).raise_for_status()  # fmt: skip
        admin.post("/api/users", json={
            "username": "ines", "role": "investigator", "password": PASSWORD,
            "must_change_password": False,
        }).raise_for_status()  # fmt: skip
        files = [("files", (n, (wild / n).read_bytes(), "image/jpeg")) for n in STORED]
        job = admin.post("/api/collections/press/uploads", files=files).json()
        for _ in range(600):
            status = admin.get(f"/api/jobs/{job['id']}").json()
            if status["status"] == "finished":
                break
            assert status["status"] in ("queued", "running"), status
            time.sleep(0.2)
        assert status["images"] == 5
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )  # fmt: skip
        yield chromium
        chromium.close()


def _log_in(page, site: Server, username: str, password: str, start: str = "/search") -> None:
    page.goto(site.url + start)
    assert "/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _only_local_requests(page, site: Server) -> list[str]:
    foreign: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((site.url, "blob:", "data:")) else foreign.append(r.url),
    )
    return foreign


def test_search_click_a_face_and_see_the_match_first(site, browser, wild):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    foreign = _only_local_requests(page, site)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + "/login")
    page.screenshot(path=OUTPUT / "login.png")
    _log_in(page, site, "ines", PASSWORD)
    page.wait_for_url(site.url + "/search")
    page.wait_for_selector(".chip input[value=press]")
    page.screenshot(path=OUTPUT / "search.png")

    # Without a purpose and a case the page refuses to search and says why.
    page.set_input_files("#photo", str(wild / "couple.jpg"))
    page.wait_for_selector("#status .error")
    assert "purpose" in page.locator("#status .error").inner_text()
    page.select_option("#purpose", "missing person")
    page.fill("#case", "MP-2024-17")
    page.dispatch_event("#case", "change")
    page.wait_for_selector(".facebox >> nth=1")
    page.wait_for_selector(".match")
    assert page.locator(".facebox").count() == 2
    assert page.locator(".facebox.selected").get_attribute("data-face") == "0"
    # The larger face is the man, found in the group selfie.
    first = page.locator(".match").first
    assert first.locator(".source").inner_text() == "selfie-many-people.jpg"

    page.click(".facebox[data-face='1']")
    page.wait_for_selector(".facebox.selected[data-face='1']")
    page.wait_for_function("document.querySelector('.match .source')?.textContent === 'img4.jpg'")
    first = page.locator(".match").first
    assert first.locator(".rank").inner_text() == "#1"
    assert float(first.locator(".score").inner_text()) > 0.5
    assert first.locator(".collection").inner_text() == "press"
    assert "leads" in page.locator(".notice").inner_text().lower()
    page.wait_for_function(
        "[...document.querySelectorAll('.match img')].every(i => i.complete && i.naturalWidth)"
    )
    page.screenshot(path=OUTPUT / "results.png", full_page=True)

    first.locator("button.thumb").click()
    page.wait_for_selector("dialog.viewer[open] #viewer-match img")
    page.wait_for_function(
        "(() => { const i = document.querySelector('#viewer-match img');"
        " return i.complete && i.naturalWidth > 0; })()"
    )
    page.wait_for_selector("#viewer-match .facebox:not([hidden])")
    assert "img4.jpg" in page.locator("#viewer-match-caption").inner_text()
    box = page.locator("#viewer-match .facebox").bounding_box()
    frame = page.locator("#viewer-match img").bounding_box()
    assert (
        box
        and frame
        and frame["x"] <= box["x"]
        and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    )
    page.screenshot(path=OUTPUT / "match.png")
    # The person records their decision on the lead; it lands in the audit log.
    assert "case MP-2024-17" in page.locator("#verdict").inner_text()
    page.click("#verify-buttons button.primary")
    page.wait_for_selector("#verdict:has-text('Recorded: confirmed by ines')")
    assert not errors, errors
    assert not foreign, foreign


def test_phone_sized_screen(site, browser, wild):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    _log_in(page, site, "ines", PASSWORD)
    page.wait_for_url(site.url + "/search")
    page.select_option("#purpose", "missing person")
    page.fill("#case", "MP-2024-17")
    page.set_input_files("#photo", str(wild / "img2.jpg"))
    page.wait_for_selector(".match")
    # Nothing is wider than the screen: no sideways scrolling.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert page.locator(".match").first.locator(".source").inner_text() == "img4.jpg"
    # The purpose form pushes the matches below the fold, where images load lazily:
    # scroll to them, then poll from here (the page's CSP forbids Playwright's eval polling).
    page.locator(".match").last.scroll_into_view_if_needed()
    loaded = "[...document.querySelectorAll('.match img')].every(i => i.complete && i.naturalWidth)"
    deadline = time.monotonic() + 30
    while not page.evaluate(loaded):
        assert time.monotonic() < deadline, "match thumbnails did not load"
        page.wait_for_timeout(100)
    page.screenshot(path=OUTPUT / "phone.png", full_page=True)


def test_collections_and_people_pages_for_an_administrator(site, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _log_in(page, site, "admin", "correct horse battery staple", start="/")
    page.wait_for_url(site.url + "/collections")
    page.wait_for_selector(".card.collection")
    card = page.locator(".card.collection").first
    assert card.locator(".name").inner_text() == "press"
    assert card.locator(".images").inner_text() == "5"
    page.wait_for_selector("#jobs .status-pill.finished")
    page.screenshot(path=OUTPUT / "collections.png", full_page=True)

    page.click("nav >> text=Accounts")
    page.wait_for_selector("#users tbody tr >> nth=1")
    page.fill("#create-user input[name=username]", "trial-tom")
    page.select_option("#create-user select[name=role]", "auditor")
    page.fill("#create-user input[name=expires_at]", "2099-12-31")
    page.click("#create-user button[type=submit]")
    page.wait_for_selector("#created code")
    one_time = page.locator("#created code").inner_text()
    assert len(one_time) >= 12
    page.wait_for_selector("#users td >> text=trial-tom")
    page.screenshot(path=OUTPUT / "people.png", full_page=True)
    login = httpx.post(
        site.url + "/api/auth/login", json={"username": "trial-tom", "password": one_time}
    )
    assert login.status_code == 200 and login.json()["me"]["must_change_password"]
    assert login.json()["me"]["role"] == "auditor"

    page.click('nav >> text="Account"')
    page.fill("#new-token input[name=name]", "case tool")
    page.click("#new-token button[type=submit]")
    page.wait_for_selector("#token-created code")
    token = page.locator("#token-created code").inner_text()
    page.wait_for_selector("#tokens td >> text=case tool")
    page.screenshot(path=OUTPUT / "account.png", full_page=True)
    me = httpx.get(site.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "admin" and me.json()["via"] == "token"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#tokens button >> text=revoke")
    page.wait_for_selector("#tokens .status-pill >> text=revoked")
    revoked = httpx.get(site.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    assert not errors, errors
