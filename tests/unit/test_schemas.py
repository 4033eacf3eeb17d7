"""Response shapes: a match is filled from a Hit by field name and never carries bytes."""

from facesearch.api.schemas import Match
from facesearch.types import Hit

HIT = Hit(
    rank=1, score=0.812345, face_id=7, image_id=3, collection="press",
    path="/srv/archive/2024/p001.jpg", source_url="https://example.org/p/1",
    captured_at="2024-05-01T10:00:00", box=(10.4, 20.6, 30.0, 40.2), thumbnail=b"\xff\xd8jpeg",
)  # fmt: skip


def test_a_match_has_urls_and_the_file_name_not_the_server_path_nor_the_thumbnail_bytes():
    match = Match.from_hit(HIT).model_dump()
    assert match == {
        "rank": 1, "score": 0.8123, "estimated_fmr": None, "band": None,
        "band_gallery_size": None, "quality": None, "face_id": 7,
        "image_id": 3, "collection": "press",
        "filename": "p001.jpg", "source_url": "https://example.org/p/1",
        "captured_at": "2024-05-01T10:00:00", "box": {"x": 10, "y": 21, "w": 30, "h": 40},
        "thumbnail_url": "/api/faces/7/thumbnail", "image_url": "/api/images/3/file",
        "face_url": "/api/faces/7", "video": None, "clip_url": None, "person": None,
    }  # fmt: skip


def test_a_match_of_a_video_carries_its_moment_and_clip():
    moment = {"track_id": 4, "time_ms": 7533, "start_ms": 7000, "end_ms": 8533,
              "duration_ms": 10000}  # fmt: skip
    match = Match.from_hit(Hit(**{**HIT.__dict__, "video": moment})).model_dump()
    assert match["video"] == moment and match["clip_url"] == "/api/images/3/clip"


def test_a_match_carries_the_calibrated_band_of_its_hit():
    hit = Hit(**{**HIT.__dict__, "band": "strong lead", "estimated_fmr": 3e-5})
    match = Match.from_hit(hit).model_dump()
    assert match["band"] == "strong lead" and match["estimated_fmr"] == 3e-5
