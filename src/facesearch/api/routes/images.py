"""Images and faces: an image with its face boxes, its file, a face and its thumbnail."""

from __future__ import annotations

import io
from pathlib import Path, PurePath

import cv2
from fastapi import APIRouter, Response
from PIL import Image, UnidentifiedImageError

from ...errors import NotFound
from ...governance.audit import ImageViewed
from ...governance.auth import Actor, Permission
from ...pipeline.decode import decode
from ...store.catalog import Catalog
from ..deps import ServicesDep, require
from ..schemas import Box, FaceBrief, FaceOut, ImageOut
from ..scope import own_collection, own_face, own_image

router = APIRouter(prefix="/api", tags=["images and faces"])
P = Permission
# Formats every browser shows as they are; others are re-encoded as JPEG.
BROWSER_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png",
                 "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}  # fmt: skip
# Faces are biometric data: no browser or proxy may keep a copy.
PRIVATE_CACHE = {"Cache-Control": "no-store"}


def _image_out(catalog: Catalog, image: dict) -> ImageOut:
    faces = [
        FaceBrief(
            id=f["id"], box=Box.of((f["x"], f["y"], f["w"], f["h"])),
            det_score=round(f["det_score"], 4), quality=round(f["quality"], 4),
            thumbnail_url=f"/api/faces/{f['id']}/thumbnail",
        )
        for f in catalog.face_list(image["id"], limit=10_000)
    ]  # fmt: skip
    return ImageOut(
        id=image["id"], collection=image["collection"], filename=PurePath(image["path"]).name,
        source_url=image["source_url"], captured_at=image["captured_at"],
        caption=image["caption"], width=image["width"], height=image["height"],
        face_count=image["face_count"], added_at=image["added_at"],
        file_url=f"/api/images/{image['id']}/file", faces=faces,
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
    image_id: int, services: ServicesDep, actor: Actor = require(P.FACES_READ)
) -> Response:
    """The image itself, as stored (or as JPEG for formats browsers cannot show)."""
    image = own_image(services.catalog, actor, image_id)
    services.record(actor, ImageViewed(image_id, None, "image"))
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
    services.record(actor, ImageViewed(row.image_id, face_id, "face"))
    return FaceOut(
        id=row.face_id, image_id=row.image_id, collection=row.collection,
        filename=PurePath(row.path).name, source_url=row.source_url,
        captured_at=row.captured_at, box=Box.of(row.box), det_score=round(row.det_score, 4),
        quality=round(row.quality, 4), model=row.model, model_version=row.model_version,
        thumbnail_url=f"/api/faces/{face_id}/thumbnail",
        image_url=f"/api/images/{row.image_id}/file",
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
