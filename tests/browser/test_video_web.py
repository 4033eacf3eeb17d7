"""A video in the web interface, in real headless Chromium against the real server: a clip
built from LFW photos is uploaded, a photo of someone in it is searched, the match shows
the face with its moment, and the clip plays from that moment, fetched by range requests."""

from __future__ import annotations

import time

import pytest
from server import Server, first_login
from test_web import OUTPUT, PASSWORD, _log_in, browser  # noqa: F401 (a fixture)
from videoclips import build_clip, single_face_people, standard_shots


@pytest.fixture(scope="module")
def clip_site(tmp_path_factory, cache_dir, lfw, analyzer):
    """The real server with a 10 s clip in collection 'footage'; who is in it when."""
    people = single_face_people(lfw, analyzer, 4)
    folder = tmp_path_factory.mktemp("clip")
    appearances = build_clip(folder / "clip.webm", standard_shots(people), "webm-vp9")
    server = Server(tmp_path_factory.mktemp("site") / "data", cache_dir)
    with server:
        admin = first_login(server, "correct horse battery staple")
        admin.post("/api/collections", json={
            "name": "footage", "source": "built clips", "legal_basis": "test fixture",
        }).raise_for_status()  # fmt: skip
        admin.post("/api/users", json={
            "username": "ines", "role": "investigator", "password": PASSWORD,
            "must_change_password": False,
        }).raise_for_status()  # fmt: skip
        data = (folder / "clip.webm").read_bytes()
        job = admin.post("/api/collections/footage/uploads",
                         files=[("files", ("clip.webm", data, "video/webm"))]).json()  # fmt: skip
        for _ in range(600):
            status = admin.get(f"/api/jobs/{job['id']}").json()
            if status["status"] == "finished":
                break
            assert status["status"] in ("queued", "running"), status
            time.sleep(0.2)
        assert status["images"] == 1 and status["video_seconds"] == 10.0, status
        yield server, people, appearances


def test_a_video_match_plays_from_its_moment(clip_site, browser):  # noqa: F811
    site, people, appearances = clip_site
    last = appearances[-1]  # alone on screen from 7 s to 9 s
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ranges: list[tuple[int, str | None]] = []
    page.on("response", lambda r: ranges.append((r.status, r.headers.get("content-range")))
            if "/clip" in r.url else None)  # fmt: skip
    _log_in(page, site, "ines", PASSWORD)
    page.wait_for_url(site.url + "/search")
    page.select_option("#purpose", "missing person")
    page.fill("#case", "MP-2024-17")
    page.set_input_files("#photo", str(people[last.name][1]))
    page.wait_for_selector(".match .moment")
    first = page.locator(".match").first
    shown = first.locator(".moment").inner_text()  # "▶ 00:00:07.533"
    seconds = float(shown.split(":")[-1])
    assert shown.startswith("▶ 00:00:0")
    assert last.start_ms / 1000 - 1 <= seconds <= last.end_ms / 1000 + 1
    page.screenshot(path=OUTPUT / "video-results.png", full_page=True)

    first.locator("button.thumb").click()
    page.wait_for_selector("dialog.viewer[open] #viewer-match video")
    state = "(() => { const v = document.querySelector('#viewer-match video'); return " \
            "[v.readyState, v.currentTime, v.paused, v.duration]; })()"  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        ready, at, paused, duration = page.evaluate(state)
        if ready >= 2 and not paused and at >= seconds - 0.05:
            break
        assert time.monotonic() < deadline, (ready, at, paused, errors)
        page.wait_for_timeout(100)
    # Started at the moment, not from the beginning; the clip is the whole video.
    assert seconds - 0.05 <= at < seconds + 2.0
    assert abs(duration - 10.0) < 0.2
    assert "At" in page.locator("#viewer-details").inner_text()
    page.screenshot(path=OUTPUT / "video-player.png")
    assert any(status == 206 and (span or "").startswith("bytes ") for status, span in ranges)
    assert not errors, errors
