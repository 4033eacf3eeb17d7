"""Search by photo (or by a stored face) within one's organisation's collections."""

from __future__ import annotations

import base64

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...config import DecodeSettings
from ...errors import FacesearchError, ImageTooLarge
from ...governance import actions
from ...governance.auth import Actor, Permission
from ...store.people import PeopleStore
from ..deps import ServicesDep, body_limit, require
from ..schemas import (
    AuthorisationIn,
    Box,
    Match,
    PersonBrief,
    Probe,
    ProbeFace,
    SearchResponse,
    VerificationIn,
    VerificationOut,
)
from ..scope import caller
from ..state import Services

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
    purpose: str | None = Form(None, description="why: one of the configured purposes"),
    case: str | None = Form(None, description="the case reference this search serves"),
    authorisation: str | None = Form(None, description="the authorisation reference"),
    actor: Actor = require(Permission.SEARCH),
) -> SearchResponse:
    """Rank the stored faces of one's organisation by similarity to a face of
    the probe, for a stated purpose and case (refused without them). Every probe
    face is returned with its box, so a client can let the person pick another
    (`face`). The search is logged with the probe's hash (the photo is not kept)
    and the faces returned. Matches are leads, never identifications."""
    acting = caller(services, actor)
    bound = actions.bind_purpose(acting, purpose, case, authorisation)
    if (photo is None) == (face_id is None):
        raise FacesearchError("send either a probe photo (field 'photo') or a stored 'face_id'")
    limits = services.settings.api
    if top > limits.max_top_k:
        raise FacesearchError(f"top must be at most {limits.max_top_k}")
    response.headers["Cache-Control"] = "no-store"
    if face_id is not None:
        hits, searched, entry = actions.search_face(acting, bound, face_id, top, collection)
        services.metrics.searches.labels("face").inc()
        return SearchResponse(
            model=services.engine.embedder_spec.name, face=None, probe_face_id=face_id,
            probe=None, searched_faces=searched,
            matches=with_persons(services.catalog, actor, hits), search_id=entry.seq,
            purpose=bound.purpose, case=bound.case,
        )  # fmt: skip
    assert photo is not None
    data = photo.file.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise ImageTooLarge(f"the photo is above the limit of {limits.max_upload_bytes:,} bytes")
    probe_limits = DecodeSettings(
        max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels
    )
    result, entry = actions.search(acting, bound, data, top, face, collection, probe_limits)
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
        matches=with_persons(services.catalog, actor, result.hits), search_id=entry.seq,
        purpose=bound.purpose, case=bound.case,
    )  # fmt: skip


def with_persons(catalog, actor: Actor, hits) -> list[Match]:
    """The matches, each with the person its face belongs to and their appearances."""
    persons = PeopleStore(catalog).persons_of_faces(
        actor.organisation_id, [h.face_id for h in hits]
    )
    matches = []
    for h in hits:
        match = Match.from_hit(h)
        found = persons.get(h.face_id)
        if found is not None:
            match.person = PersonBrief(id=found["id"], name=found["name"], faces=found["faces"],
                                       url=f"/api/people/{found['id']}")  # fmt: skip
        matches.append(match)
    return matches


@router.post("/{search_id}/verifications", response_model=VerificationOut, status_code=201)
def verify_match(
    search_id: int, body: VerificationIn, services: ServicesDep,
    actor: Actor = require(Permission.SEARCH),
) -> VerificationOut:  # fmt: skip
    """Record one's decision on a match of one's organisation's search: confirmed
    (the person checked it is the same person) or rejected."""
    verification_id = actions.verify_match(
        caller(services, actor), search_id, body.face_id, body.decision
    )
    return _verification_out(services, verification_id)


@router.post("/verifications/{verification_id}/confirm", response_model=VerificationOut)
def confirm_verification(
    verification_id: int, services: ServicesDep, actor: Actor = require(Permission.SEARCH)
) -> VerificationOut:
    """A second person confirms a decision (required where the settings say so)."""
    actions.confirm_verification(caller(services, actor), verification_id)
    return _verification_out(services, verification_id)


@router.post("/{search_id}/authorisation", status_code=201)
def confirm_authorisation(
    search_id: int, body: AuthorisationIn, services: ServicesDep,
    actor: Actor = require(Permission.SEARCH),
) -> dict:  # fmt: skip
    """Give the authorisation reference of a search that went ahead as pending."""
    logged = actions.confirm_authorisation(caller(services, actor), search_id, body.reference)
    return {"search_id": search_id, "authorisation": body.reference, "entry": logged.seq}


def _verification_out(services: Services, verification_id: int) -> VerificationOut:
    v = services.audit.store.verification(verification_id)
    assert v is not None
    second = services.settings.governance.second_confirmation
    return VerificationOut(
        id=v["id"], search_id=v["search_seq"], face_id=v["face_id"], decision=v["decision"],
        decided_by=v["decided_by"], confirmed_by=v["confirmed_by"],
        final=not second or v["confirmed_by"] is not None,
    )  # fmt: skip
