"""Images and faces: an image with its face boxes, its file, a face and its thumbnail."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePath

import cv2
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from PIL import Image, UnidentifiedImageError

from ...errors import NotFound
from ...governance import actions
from ...governance.auth import Actor, Permission
from ...pipeline.decode import decode
from ...store import videos
from ...store.catalog import Catalog
from ..deps import ServicesDep, require
from ..schemas import Box, FaceBrief, FaceOut, ImageOut, TrackOut, VideoMoment
from ..scope import caller, own_collection, own_face, own_image

router = APIRouter(prefix="/api", tags=["images and faces"])
P = Permission
# Formats every browser shows as they are; others are re-encoded as JPEG.
BROWSER_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
                 "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}  # fmt: skip
# Faces are biometric data: no browser or proxy may keep a copy.
PRIVATE_CACHE = {"Cache-Control": "no-store"}
VIDEO_TYPES = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime",
    ".mkv": "video/x-matroska", ".webm": "video/webm", ".avi": "video/x-msvideo",
}  # fmt: skip
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
CHUNK = 256 * 1024


def _image_out(catalog: Catalog, image: dict) -> ImageOut:
    listed = catalog.face_list(image["id"], limit=10_000)
    moments = videos.moments(catalog, [f["id"] for f in listed])
    faces = [
        FaceBrief(
            id=f["id"], box=Box.of((f["x"], f["y"], f["w"], f["h"])),
            det_score=round(f["det_score"], 4), quality=round(f["quality"], 4),
            thumbnail_url=f"/api/faces/{f['id']}/thumbnail",
            video=VideoMoment(**moments[f["id"]].as_dict()) if f["id"] in moments else None,
        )
        for f in listed
    ]  # fmt: skip
    media = videos.media(catalog, image["id"])
    extra = {}
    if media["kind"] == "video":
        extra = {
            "duration_ms": media["duration_ms"], "complete": media["complete"],
            "clip_url": f"/api/images/{image['id']}/clip",
            "tracks": [TrackOut(**t) for t in videos.tracks(catalog, image["id"])],
        }  # fmt: skip
    return ImageOut(
        id=image["id"], collection=image["collection"], filename=PurePath(image["path"]).name,
        source_url=image["source_url"], captured_at=image["captured_at"],
        caption=image["caption"], width=image["width"], height=image["height"],
        face_count=image["face_count"], added_at=image["added_at"],
        file_url=f"/api/images/{image['id']}/file", faces=faces, kind=media["kind"], **extra,
    )  # fmt: skip


@router.get("/images", response_model=list[ImageOut])
def list_images(
    collection: str, services: ServicesDep, limit: int = 50,
    actor: Actor = require(P.FACES_READ),
) -> list[ImageOut]:  # fmt: skip
    """The first images of a collection, each with its face boxes."""
    catalog = services.catalog
    chosen = own_collection(catalog, actor, collection)
    rows = catalog.images(chosen, min(max(limit, 1), 500))
    return [_image_out(catalog, catalog.image(row["id"])) for row in rows]


@router.get("/images/{image_id}", response_model=ImageOut)
def get_image(
    image_id: int, services: ServicesDep, actor: Actor = require(P.FACES_READ)
) -> ImageOut:
    """An image's record (source, date, size) with the box of every face in it."""
    return _image_out(services.catalog, own_image(services.catalog, actor, image_id))


@router.get(
    "/images/{image_id}/file",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
)
def get_image_file(
    image_id: int, request: Request, services: ServicesDep,
    actor: Actor = require(P.FACES_READ),
) -> Response:  # fmt: skip
    """The image itself, as stored (or as JPEG for formats browsers cannot show); a
    video's file is its clip (`/clip`)."""
    image = own_image(services.catalog, actor, image_id)
    if videos.media(services.catalog, image_id)["kind"] == "video":
        return get_clip(image_id, request, services, actor)
    actions.viewed(caller(services, actor), image_id, None, "image")
    limit = services.settings.decode.max_bytes
    try:
        with Path(image["path"]).open("rb") as f:
            data = f.read(limit + 1)
    except OSError:
        raise NotFound(
            f"the file of image {image_id} is no longer where it was ingested from"
        ) from None
    try:
        kind = BROWSER_TYPES.get(Image.open(io.BytesIO(data)).format or "")
    except (UnidentifiedImageError, OSError):
        kind = None
    if kind is None:
        pixels = decode(data, services.settings.decode).pixels
        data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        kind = "image/jpeg"
    return Response(data, media_type=kind, headers=PRIVATE_CACHE)


@router.get("/faces/{face_id}", response_model=FaceOut)
def get_face(face_id: int, services: ServicesDep, actor: Actor = require(P.FACES_READ)) -> FaceOut:
    """A stored face: where it appears (image, collection, source, date) and its box."""
    row = own_face(services.catalog, actor, face_id)
    actions.viewed(caller(services, actor), row.image_id, face_id, "face")
    moment = videos.moments(services.catalog, [face_id]).get(face_id)
    extra = {}
    if moment is not None:
        extra = {"video": VideoMoment(**moment.as_dict()),
                 "clip_url": f"/api/images/{row.image_id}/clip"}  # fmt: skip
    return FaceOut(
        id=row.face_id, image_id=row.image_id, collection=row.collection,
        filename=PurePath(row.path).name, source_url=row.source_url,
        captured_at=row.captured_at, box=Box.of(row.box), det_score=round(row.det_score, 4),
        quality=round(row.quality, 4), model=row.model, model_version=row.model_version,
        thumbnail_url=f"/api/faces/{face_id}/thumbnail",
        image_url=f"/api/images/{row.image_id}/file", **extra,
    )  # fmt: skip


@router.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def get_face_thumbnail(
    face_id: int, services: ServicesDep, actor: Actor = require(P.FACES_READ)
) -> Response:
    """The aligned face as a small JPEG."""
    row = own_face(services.catalog, actor, face_id)
    return Response(row.thumbnail, media_type="image/jpeg", headers=PRIVATE_CACHE)


@router.get(
    "/images/{image_id}/clip",
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in sorted(set(VIDEO_TYPES.values()))}},
        206: {"description": "the part of the video asked for with a Range header"},
        416: {"description": "the range asked for is malformed or past the file's end"},
    },
)
def get_clip(
    image_id: int, request: Request, services: ServicesDep,
    actor: Actor = require(P.FACES_READ),
) -> Response:  # fmt: skip
    """A video as stored, for an HTML5 player: one byte range of it (`Range: bytes=A-B`,
    answered 206 with Content-Range; a bad range 416), or the whole file. Only to users
    of the organisation that holds it; opening it is logged once per playback (the
    request from its first byte), not once per range."""
    image = own_image(services.catalog, actor, image_id)
    if videos.media(services.catalog, image_id)["kind"] != "video":
        raise NotFound(f"image {image_id} is not a video")
    path = Path(image["path"])
    try:
        size = path.stat().st_size
    except OSError:
        raise NotFound(
            f"the file of video {image_id} is no longer where it was ingested from"
        ) from None
    kind = VIDEO_TYPES.get(path.suffix.lower(), "application/octet-stream")
    headers = {**PRIVATE_CACHE, "Accept-Ranges": "bytes"}
    asked = request.headers.get("range")
    span = _byte_range(asked, size) if asked else (0, size - 1)
    if span is None:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = span
    if start == 0:
        actions.viewed(caller(services, actor), image_id, None, "video")
    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if asked:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(_read(path, start, end), status, headers, media_type=kind)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte of a single `bytes=` range, clipped to the file; None
    when it is malformed or asks for nothing the file has (answered 416)."""
    found = RANGE.fullmatch(header.strip())
    if found is None or size == 0:
        return None
    first, last = found.groups()
    if not first:
        if not last or int(last) == 0:
            return None
        return max(size - int(last), 0), size - 1  # the last N bytes
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return None
    return start, end


def _read(path: Path, start: int, end: int) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        left, at = end - start + 1, start
        while left > 0:
            chunk = os.pread(fd, min(CHUNK, left), at)
            if not chunk:  # the file shrank since: end the body short rather than hang
                return
            yield chunk
            left -= len(chunk)
            at += len(chunk)
    finally:
        os.close(fd)
