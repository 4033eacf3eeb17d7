"""Videos over the API: uploaded and ingested by a job, found by a photo search with their
moment, described with their tracks, served by byte ranges to their organisation only,
erased by track or whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from apiworld import PURPOSE, wait_for_job
from videoclips import build_clip, people_photos, standard_shots

CLIP_KEYS = {"track_id", "time_ms", "start_ms", "end_ms", "duration_ms"}


@pytest.fixture(scope="module")
def footage(world, lfw, tmp_path_factory):
    """Collection 'footage' with one 10 s clip, ingested from an upload."""
    folder = tmp_path_factory.mktemp("clip")
    people = people_photos(lfw, 4)
    clip = folder / "clip.mp4"
    appearances = build_clip(clip, standard_shots(people), "mp4-h264")
    client, admin = world.client, world.as_("administrator")
    body = {"name": "footage", "source": "built clips", "legal_basis": "test"}
    client.post("/api/collections", headers=admin, json=body)
    job = client.post("/api/collections/footage/uploads", headers=admin,
                      files=[("files", ("clip.mp4", clip.read_bytes(), "video/mp4"))])  # fmt: skip
    assert job.status_code == 202, job.text
    done = wait_for_job(client, job.json()["id"], admin)
    assert (done["status"], done["images"], done["errors"]) == ("finished", 1, 0), done
    assert done["video_seconds"] == done["video_seconds_total"] == 10.0
    return clip, people, appearances


def _search(world, photo: Path, who: str = "investigator") -> dict:
    answer = world.client.post(
        "/api/search", headers=world.as_(who), files={"photo": ("p.jpg", photo.read_bytes())},
        data={**PURPOSE, "collection": "footage", "top": "5"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_photo_search_returns_the_moment_and_the_clip(world, footage):
    _, people, appearances = footage
    last = appearances[-1]
    best = _search(world, people[last.name][1])["matches"][0]
    assert set(best["video"]) == CLIP_KEYS
    assert last.start_ms - 1000 <= best["video"]["time_ms"] <= last.end_ms + 1000
    assert best["video"]["duration_ms"] == 10_000
    assert best["clip_url"] == f"/api/images/{best['image_id']}/clip"
    image = world.client.get(f"/api/images/{best['image_id']}", headers=world.as_("investigator"))
    body = image.json()
    assert body["kind"] == "video" and body["duration_ms"] == 10_000 and body["complete"]
    # LFW photos may show someone else behind the person: at least one track each.
    assert len(body["tracks"]) >= len(appearances)
    assert best["face_id"] in {f for t in body["tracks"] for f in t["face_ids"]}
    assert all(f["video"]["time_ms"] is not None for f in body["faces"])
    face = world.client.get(f"/api/faces/{best['face_id']}", headers=world.as_("investigator"))
    assert face.json()["video"] == best["video"] and face.json()["clip_url"] == best["clip_url"]
    schema = world.client.get("/openapi.json", headers=world.as_("investigator")).json()
    assert set(schema["components"]["schemas"]["VideoMoment"]["properties"]) == CLIP_KEYS
    assert "/api/images/{image_id}/clip" in schema["paths"]


def test_the_clip_is_served_by_byte_ranges_to_its_organisation_only(world, footage):
    clip, people, appearances = footage
    data = clip.read_bytes()
    size = len(data)
    image_id = _search(world, people[appearances[0].name][1])["matches"][0]["image_id"]
    url = f"/api/images/{image_id}/clip"
    client, me = world.client, world.as_("investigator")
    views = len(_views(world, image_id))

    whole = client.get(url, headers=me)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["cache-control"] == "no-store"
    for asked, first, last in (
        ("bytes=0-99", 0, 99), ("bytes=100-", 100, size - 1), ("bytes=-50", size - 50, size - 1),
        (f"bytes=10-{size + 500}", 10, size - 1),
    ):  # fmt: skip
        part = client.get(url, headers={**me, "Range": asked})
        assert part.status_code == 206, (asked, part.text[:200])
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == data[first : last + 1]
        assert int(part.headers["content-length"]) == last - first + 1
    for bad in (f"bytes={size}-", "bytes=50-10", "bytes=-0", "bytes=abc", "items=0-1"):
        refused = client.get(url, headers={**me, "Range": bad})
        assert refused.status_code == 416, bad
        assert refused.headers["content-range"] == f"bytes */{size}"
    # A playback is logged once (its request from the first byte), not once per range.
    assert len(_views(world, image_id)) == views + 2  # the whole file, and bytes=0-99

    assert client.get(url, headers=world.as_("outsider")).status_code == 404
    assert client.get(url, headers=world.as_("auditor")).status_code == 403
    assert client.get(url).status_code == 401
    photo = client.get("/api/images?collection=press", headers=me).json()[0]["id"]
    assert client.get(f"/api/images/{photo}/clip", headers=me).status_code == 404


def _views(world, image_id: int) -> list:
    return [
        e for e in world.services.audit.store.entries()
        if e.action == "view" and f'"image_id":{image_id}' in e.details.replace(" ", "")
        and '"video"' in e.details
    ]  # fmt: skip


def test_erasure_of_a_track_over_the_api(world, footage):
    _, people, appearances = footage
    name = appearances[0].name
    best = _search(world, people[name][1])["matches"][0]
    track_id = best["video"]["track_id"]
    client = world.client
    refused = client.post("/api/rights/erasures", headers=world.as_("outsider"),
                          json={"track_ids": [track_id], "reference": "X"})  # fmt: skip
    assert refused.status_code in (403, 404)
    erased = client.post("/api/rights/erasures", headers=world.as_("supervisor"),
                         json={"track_ids": [track_id], "reference": "DSR-9"})  # fmt: skip
    assert erased.status_code == 200, erased.text
    assert best["face_id"] in erased.json()["erased"] and erased.json()["blocklisted"] >= 1
    after = _search(world, people[name][1])["matches"]
    assert all((m["video"] or {}).get("track_id") != track_id for m in after)


def test_a_server_side_folder_job_takes_videos_like_photos(world, footage, lfw):
    clip, _, _ = footage
    root = world.settings.api.allowed_roots[0] / "footage"
    root.mkdir()
    (root / "again.mkv").write_bytes(clip.read_bytes())  # same content: a duplicate
    (root / "photo.jpg").write_bytes(next(lfw.glob("B*/*_0001.jpg")).read_bytes())
    (root / "broken.webm").write_bytes(clip.read_bytes()[:5000])
    client, investigator = world.client, world.as_("investigator")
    job = client.post("/api/jobs", headers=investigator,
                      json={"collection": "footage", "paths": [str(root)]})  # fmt: skip
    assert job.status_code == 202, job.text
    done = wait_for_job(client, job.json()["id"], investigator)
    assert (done["status"], done["images"], done["duplicates"], done["errors"]) == (
        "finished", 1, 1, 1,
    ), done  # fmt: skip
    errors = world.services.catalog.errors(world.services.catalog.collection("footage"))
    assert any(e["path"].endswith("broken.webm") for e in errors)
