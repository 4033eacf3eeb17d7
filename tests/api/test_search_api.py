"""Search by photo or by stored face, images and faces, with real models and real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from apiworld import PURPOSE, build_app, make_settings
from fastapi.testclient import TestClient
from PIL import Image

from facesearch.types import ImageResult, SourceItem

PEOPLE = "selfie-many-people.jpg"


def _search(world, who, photo: bytes | None = None, **fields):
    files = {"photo": ("probe.jpg", photo, "image/jpeg")} if photo is not None else None
    fields = {**PURPOSE, **fields}
    data = {k: (v if isinstance(v, list) else str(v)) for k, v in fields.items() if v is not None}
    return world.client.post("/api/search", files=files, data=data, headers=world.as_(who))


def test_a_probe_finds_the_same_person_first_with_everything_a_person_needs(world, wild):
    answer = _search(world, "investigator", (wild / "img2.jpg").read_bytes(), top=4)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    result = answer.json()
    assert result["notice"].startswith("Matches are leads")
    assert result["face"] == 0 and result["probe"]["width"] == 1536
    assert result["probe"]["height"] == 1152 and len(result["probe"]["faces"]) == 1
    assert result["probe"]["faces"][0]["thumbnail"].startswith("data:image/jpeg;base64,")
    matches = result["matches"]
    # img2 is not stored; img1 and img4 show the same person (wild/master.csv), and so
    # does one face of the group selfie. Everyone else scores far below SFace's 0.363.
    assert [m["rank"] for m in matches] == [1, 2, 3, 4]
    assert matches[0]["filename"] == "img4.jpg"
    assert {m["filename"] for m in matches[:3]} == {"img1.jpg", "img4.jpg", PEOPLE}
    assert matches[2]["score"] > 0.5 > 0.363 > matches[3]["score"]
    assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
    first = matches[0]
    assert first["collection"] == "press"
    assert first["thumbnail_url"] == f"/api/faces/{first['face_id']}/thumbnail"
    assert first["image_url"] == f"/api/images/{first['image_id']}/file"
    assert set(first["box"]) == {"x", "y", "w", "h"} and first["box"]["w"] > 50
    assert {"source_url", "captured_at"} <= first.keys()
    assert "embedding" not in answer.text and "sha256" not in answer.text


def test_pick_another_probe_face_and_filter_collections(world, wild):
    couple = (wild / "couple.jpg").read_bytes()
    default = _search(world, "supervisor", couple, top=1).json()
    faces = default["probe"]["faces"]
    assert len(faces) == 2 and default["face"] == 0
    # Faces come largest first: the first is the man of the couple, found in the group
    # selfie; the second is the woman of img1 and img4.
    assert default["matches"][0]["filename"] == PEOPLE
    other = _search(world, "supervisor", couple, top=3, face=1).json()
    assert other["face"] == 1 and other["matches"][0]["filename"] == "img4.jpg"
    assert {m["filename"] for m in other["matches"]} == {"img1.jpg", "img4.jpg", PEOPLE}
    out_of_range = _search(world, "supervisor", couple, face=2)
    assert out_of_range.status_code == 400 and "0..1" in out_of_range.json()["detail"]
    chosen = _search(world, "supervisor", couple, collection=["press"], top=1)
    assert chosen.json()["matches"][0]["collection"] == "press"
    unknown = _search(world, "supervisor", couple, collection=["nope"])
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]


def test_search_with_a_stored_face_leaves_that_face_out(world, wild):
    catalog = world.services.catalog
    img1 = next(i for i in catalog.images(limit=100) if i["path"].endswith("img1.jpg"))
    face_id = catalog.face_list(img1["id"])[0]["id"]
    result = _search(world, "investigator", face_id=face_id, top=2).json()
    assert result["probe"] is None and result["probe_face_id"] == face_id
    assert [m["face_id"] for m in result["matches"]].count(face_id) == 0
    assert {m["filename"] for m in result["matches"]} == {"img4.jpg", PEOPLE}
    assert result["matches"][0]["rank"] == 1 and result["matches"][0]["score"] > 0.5
    missing = _search(world, "investigator", face_id=999999)
    assert missing.status_code == 404


def test_bad_probes_get_clear_answers(world, wild):
    def detail(answer, status):
        assert answer.status_code == status, answer.text
        return answer.json()["detail"]

    assert "either a probe photo" in detail(_search(world, "investigator"), 400)
    both = _search(world, "investigator", (wild / "img2.jpg").read_bytes(), face_id=1)
    assert "either a probe photo" in detail(both, 400)
    assert "not an image" in detail(_search(world, "investigator", b"%PDF-1.4 no"), 415)
    assert "empty" in detail(_search(world, "investigator", b""), 422)
    truncated = (wild / "img2.jpg").read_bytes()[:2000]
    assert "truncated" in detail(_search(world, "investigator", truncated), 422)
    blank = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank, "PNG")
    assert "no face" in detail(_search(world, "investigator", blank.getvalue()), 400)
    assert "at most 200" in detail(_search(world, "investigator", blank.getvalue(), top=201), 400)
    assert "top" in detail(_search(world, "investigator", blank.getvalue(), top=0), 422)
    assert "face" in detail(_search(world, "investigator", blank.getvalue(), face=-1), 422)


def test_upload_and_pixel_limits_answer_413(tmp_path, cache_dir, analyzer, wild):
    settings = make_settings(
        tmp_path, cache_dir, max_upload_bytes=300_000, max_upload_pixels=1_000_000
    )
    app = build_app(settings, analyzer)
    services = app.state.services
    user, _ = services.auth.create_user(
        "ivo", services.accounts.organisation_named("default").id, "investigator",
        "a long enough password", must_change_password=False,
    )  # fmt: skip
    secret, _ = services.auth.create_token(user, "t")
    headers = {"Authorization": f"Bearer {secret}"}
    big = (wild / "img1.jpg").read_bytes()  # 2.3 MB
    wide = io.BytesIO()
    Image.new("RGB", (2000, 1000)).save(wide, "JPEG", quality=20)  # small file, 2 Mpx
    assert len(wide.getvalue()) < 300_000
    with TestClient(app) as client:
        too_big = client.post("/api/search", files={"photo": ("a.jpg", big)}, headers=headers)
        too_wide = client.post("/api/search", files={"photo": ("b.jpg", wide.getvalue())},
                               data=PURPOSE, headers=headers)  # fmt: skip
        many = client.post(
            "/api/collections/x/uploads", headers=headers,
            files=[("files", ("a.jpg", big))],
        )  # fmt: skip
    assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
    assert too_wide.status_code == 413 and "megapixels" in too_wide.json()["detail"]
    assert many.status_code == 404  # no such collection: checked before the body is stored


def test_other_organisations_search_nothing_of_ours(world, wild):
    result = _search(world, "outsider", (wild / "img2.jpg").read_bytes()).json()
    assert result["matches"] == [] and result["searched_faces"] == 0
    hidden = _search(world, "outsider", (wild / "img2.jpg").read_bytes(), collection=["press"])
    assert hidden.status_code == 404
    face_id = world.services.catalog.face_list(limit=1)[0]["id"]
    assert _search(world, "outsider", face_id=face_id).status_code == 404


def test_images_and_faces_show_where_a_face_appears(world, wild):
    client, investigator = world.client, world.as_("investigator")
    listed = client.get("/api/images?collection=press&limit=10", headers=investigator).json()
    selfie = next(i for i in listed if i["filename"] == "selfie-many-people.jpg")
    assert selfie["face_count"] == len(selfie["faces"]) == 6
    image = client.get(f"/api/images/{selfie['id']}", headers=investigator).json()
    assert image == selfie
    file = client.get(image["file_url"], headers=investigator)
    assert file.status_code == 200 and file.headers["content-type"] == "image/jpeg"
    assert file.content == (wild / "selfie-many-people.jpg").read_bytes()
    face = image["faces"][0]
    shown = client.get(f"/api/faces/{face['id']}", headers=investigator).json()
    assert shown["image_id"] == image["id"] and shown["box"] == face["box"]
    assert shown["collection"] == "press" and shown["model"] == "sface-2021dec"
    thumb = client.get(face["thumbnail_url"], headers=investigator)
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (96, 96)
    for url in (f"/api/images/{image['id']}", image["file_url"], f"/api/faces/{face['id']}",
                face["thumbnail_url"]):  # fmt: skip
        assert client.get(url, headers=world.as_("outsider")).status_code == 404
    assert client.get("/api/images/999999", headers=investigator).status_code == 404
    assert client.get("/api/images", headers=investigator).status_code == 422


@pytest.mark.parametrize("fmt", ["TIFF", "PPM"])
def test_formats_browsers_cannot_show_are_served_as_jpeg(world, tmp_path, fmt):
    services = world.services
    path = tmp_path / f"probe.{fmt.lower()}"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path, fmt)
    collection = services.catalog.collection("press")
    run = services.catalog.start_run(collection, [str(path)])
    services.catalog.store_results(
        collection, run, [ImageResult(SourceItem(path), fmt * 8, path.stat().st_size, 64, 48)],
        "sface-2021dec", "2021dec",
    )  # fmt: skip
    image_id = next(i["id"] for i in services.catalog.images(limit=1000) if i["path"] == str(path))
    served = world.client.get(f"/api/images/{image_id}/file", headers=world.as_("investigator"))
    assert served.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(served.content)).size == (64, 48)
    path.unlink()
    gone = world.client.get(f"/api/images/{image_id}/file", headers=world.as_("investigator"))
    assert gone.status_code == 404 and "no longer" in gone.json()["detail"]
