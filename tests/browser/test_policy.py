"""The Content-Security-Policy in a real browser: every page and the API documentation
work without 'unsafe-inline' scripts, and the browser reports no violation."""

from __future__ import annotations

import shutil

import pytest
from server import Server, first_login

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium)",
        allow_module_level=True,
    )
ADMIN_PASSWORD = "correct horse battery staple"


def test_pages_and_the_api_documentation_run_under_the_policy(tmp_path, cache_dir):
    with Server(tmp_path / "data", cache_dir) as server:
        first_login(server, ADMIN_PASSWORD).close()
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )  # fmt: skip
            page = chromium.new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text)
                    if "Content Security Policy" in m.text else None)  # fmt: skip
            page.goto(server.url + "/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", ADMIN_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/collections")
            for path in ("/collections", "/admin", "/account"):
                page.goto(server.url + path)
                page.wait_for_load_state("networkidle")
            page.goto(server.url + "/docs")
            # Swagger UI builds the page from /openapi.json with its inline start script.
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() > 30
            chromium.close()
    assert violations == []
