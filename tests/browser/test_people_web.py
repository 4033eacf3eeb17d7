"""The People pages in real headless Chromium against the real server on 127.0.0.1:
name a person, split faces out, undo, merge back, undo again (real photos, real models).
Screenshots go to test-output/browser/."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import lfw_people
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


@pytest.fixture(scope="module")
def site(tmp_path_factory, cache_dir, lfw):
    """The real server with two LFW people (four photos each) and an investigator 'ines'."""
    server = Server(tmp_path_factory.mktemp("people-site") / "data", cache_dir)
    with server:
        admin = first_login(server, "correct horse battery staple")
        admin.post("/api/collections", json={
            "name": "press", "source": "LFW", "legal_basis": "test fixture",
        }).raise_for_status()  # fmt: skip
        admin.post("/api/users", json={
            "username": "ines", "role": "investigator", "password": PASSWORD,
            "must_change_password": False,
        }).raise_for_status()  # fmt: skip
        photos = [p for images in lfw_people(lfw, 4, 2).values() for p in images[:4]]
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        job = admin.post("/api/collections/press/uploads", files=files).json()
        for _ in range(600):
            status = admin.get(f"/api/jobs/{job['id']}").json()
            if status["status"] == "finished":
                break
            assert status["status"] in ("queued", "running"), status
            time.sleep(0.2)
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


def _appearances(page, count: int) -> None:
    # Locators, not wait_for_function: the pages' CSP forbids evaluating strings.
    sync_api.expect(page.locator(".appearance")).to_have_count(count)


def _count(page) -> int:
    return int(page.locator("#person-count").inner_text().split()[0])


def test_name_split_undo_merge_undo(site, browser):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + "/people")
    page.fill("input[name=username]", "ines")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/people")
    page.wait_for_selector(".person-card")
    assert page.locator(".person-card").count() == 2
    assert page.locator(".person-card .count").first.inner_text() == "4 photos"
    page.screenshot(path=OUTPUT / "people-grid.png", full_page=True)

    page.locator(".person-card").first.click()
    page.wait_for_selector(".appearance")
    person = page.url.rsplit("/", 1)[-1]
    assert _count(page) == 4

    page.fill("#rename input[name=name]", "Jane Roe")
    page.click("#rename button[type=submit]")
    page.wait_for_selector("#person-name:has-text('Jane Roe')")
    page.wait_for_selector("#operations li:has-text('name by ines')")

    page.locator(".appearance input[type=checkbox]").first.check()
    page.click("#split")
    page.wait_for_selector("#toast:has-text('split into person')")
    split_into = page.locator("#toast").inner_text().rsplit(" ", 1)[-1]
    _appearances(page, 3)
    assert _count(page) == 3
    page.screenshot(path=OUTPUT / "person-split.png", full_page=True)

    page.locator("#operations li:has-text('split') button.undo").click()
    page.wait_for_selector("#toast:has-text('undid the split')")
    _appearances(page, 4)

    # Split again, then merge the new person back from its own page, and undo that.
    page.locator(".appearance input[type=checkbox]").first.check()
    page.click("#split")
    page.wait_for_selector("#toast:has-text('split into person')")
    split_into = page.locator("#toast").inner_text().rsplit(" ", 1)[-1]
    page.goto(site.url + f"/people/{split_into}")
    page.wait_for_selector(".appearance")
    assert _count(page) == 1
    page.fill("#merge input[name=into]", person)
    page.click("#merge button[type=submit]")
    page.wait_for_selector(f"#toast:has-text('merged into person {person}')")
    page.goto(site.url + f"/people/{person}")
    _appearances(page, 4)
    assert page.locator("#person-name").inner_text() == "Jane Roe"
    page.locator("#operations li:has-text('merge') button.undo").first.click()
    page.wait_for_selector("#toast:has-text('undid the merge')")
    _appearances(page, 3)
    page.screenshot(path=OUTPUT / "person-undone.png", full_page=True)
    assert not errors, errors
