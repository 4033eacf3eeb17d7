"""Search by photo (or by a stored face) within one's organisation's collections."""

from __future__ import annotations

import base64

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...config import DecodeSettings
from ...errors import FacesearchError, ImageTooLarge
from ...governance.auth import Actor, Permission
from ..deps import ServicesDep, body_limit, require
from ..schemas import Box, Match, Probe, ProbeFace, SearchResponse
from ..scope import own_collection, own_collection_names, own_face

router = APIRouter(prefix="/api/search", tags=["search"])


@router.post("", response_model=SearchResponse, dependencies=[body_limit("max_upload_bytes")])
def search(
    response: Response,
    services: ServicesDep,
    photo: UploadFile | None = File(None, description="the probe photo"),
    face_id: int | None = Form(None, description="search with a stored face instead"),
    face: int | None = Form(None, ge=0, description="which probe face, 0 = the largest"),
    top: int = Form(20, ge=1, description="how many matches"),
    collection: list[str] | None = Form(None, description="only these collections"),
    actor: Actor = require(Permission.SEARCH),
) -> SearchResponse:
    """Rank the stored faces of one's organisation by similarity to a face of
    the probe. Every probe face is returned with its box, so a client can let
    the person pick another (`face`). Matches are leads, never identifications."""
    if (photo is None) == (face_id is None):
        raise FacesearchError("send either a probe photo (field 'photo') or a stored 'face_id'")
    limits = services.settings.api
    if top > limits.max_top_k:
        raise FacesearchError(f"top must be at most {limits.max_top_k}")
    catalog = services.catalog
    if collection:
        names = [own_collection(catalog, actor, name).name for name in collection]
    else:
        names = own_collection_names(catalog, actor)
    response.headers["Cache-Control"] = "no-store"
    engine = services.engine
    if face_id is not None:
        own_face(catalog, actor, face_id)
        with services.engine_lock:
            hits, searched = engine.search_face(face_id, top, names)
        services.metrics.searches.labels("face").inc()
        return SearchResponse(
            model=engine.embedder_spec.name, face=None, probe_face_id=face_id, probe=None,
            searched_faces=searched, matches=[Match.from_hit(h) for h in hits],
        )  # fmt: skip
    assert photo is not None
    data = photo.file.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise ImageTooLarge(f"the photo is above the limit of {limits.max_upload_bytes:,} bytes")
    probe_limits = DecodeSettings(
        max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels
    )
    with services.engine_lock:
        result = engine.search(data, top, face, names, probe_limits)
    services.metrics.searches.labels("photo").inc()
    width, height = result.probe_size
    faces = [
        ProbeFace(
            index=n, box=Box.of(f.detection.box), score=round(f.detection.score, 4),
            quality=round(f.quality, 4),
            thumbnail="data:image/jpeg;base64," + base64.b64encode(f.thumbnail).decode(),
        )
        for n, f in enumerate(result.probe_faces)
    ]  # fmt: skip
    return SearchResponse(
        model=result.model, face=result.face_index, probe=Probe(width=width, height=height,
        faces=faces), searched_faces=result.searched_faces,
        matches=[Match.from_hit(h) for h in result.hits],
    )  # fmt: skip
