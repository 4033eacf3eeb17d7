"""Search by photo (or by a stored face) within one's organisation's collections."""

from __future__ import annotations

import base64
import hashlib
import json

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...clock import now
from ...config import DecodeSettings
from ...errors import Conflict, FacesearchError, ImageTooLarge, NotFound
from ...governance.audit import (
    AuthorisationConfirmed,
    ResultVerified,
    SearchPerformed,
    SearchRefused,
)
from ...governance.auth import Actor, Permission, PermissionDenied
from ...governance.purpose import PurposeRequired, bind
from ...store.audit import Entry
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
from ..scope import own_collection, own_collections, own_face
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
    try:
        bound = bind(services.settings.governance, purpose, case, authorisation)
    except PurposeRequired as exc:
        services.record(actor, SearchRefused(str(exc)))
        raise
    if (photo is None) == (face_id is None):
        raise FacesearchError("send either a probe photo (field 'photo') or a stored 'face_id'")
    limits = services.settings.api
    if top > limits.max_top_k:
        raise FacesearchError(f"top must be at most {limits.max_top_k}")
    catalog = services.catalog
    if collection:
        chosen = [own_collection(catalog, actor, name) for name in collection]
    else:
        chosen = own_collections(catalog, actor)
    names = [c.name for c in chosen]
    response.headers["Cache-Control"] = "no-store"
    engine = services.engine
    if face_id is not None:
        own_face(catalog, actor, face_id)
        with services.engine_lock:
            hits, searched = engine.search_face(face_id, top, chosen)
        services.metrics.searches.labels("face").inc()
        entry = _log_search(services, actor, bound, None, face_id, names, hits, searched)
        return SearchResponse(
            model=engine.embedder_spec.name, face=None, probe_face_id=face_id, probe=None,
            searched_faces=searched, matches=with_persons(catalog, actor, hits),
            search_id=entry.seq, purpose=bound.purpose, case=bound.case,
        )  # fmt: skip
    assert photo is not None
    data = photo.file.read(limits.max_upload_bytes + 1)
    if len(data) > limits.max_upload_bytes:
        raise ImageTooLarge(f"the photo is above the limit of {limits.max_upload_bytes:,} bytes")
    probe_limits = DecodeSettings(
        max_bytes=limits.max_upload_bytes, max_pixels=limits.max_upload_pixels
    )
    with services.engine_lock:
        result = engine.search(data, top, face, chosen, probe_limits)
    services.metrics.searches.labels("photo").inc()
    # Only the probe's hash is kept; the photo itself is gone with this request.
    entry = _log_search(
        services, actor, bound, hashlib.sha256(data).hexdigest(), None, names, result.hits,
        result.searched_faces,
    )  # fmt: skip
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
        matches=with_persons(catalog, actor, result.hits), search_id=entry.seq,
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


def _log_search(services: Services, actor: Actor, bound, probe_sha256, probe_face_id, names,
                hits, searched) -> Entry:  # fmt: skip
    return services.record(actor, SearchPerformed(
        bound.purpose, bound.case, bound.authorisation, probe_sha256, probe_face_id, names,
        [h.face_id for h in hits], [round(h.score, 4) for h in hits], searched,
        authorisation_pending=bound.pending,
    ))  # fmt: skip


@router.post("/{search_id}/verifications", response_model=VerificationOut, status_code=201)
def verify_match(
    search_id: int, body: VerificationIn, services: ServicesDep,
    actor: Actor = require(Permission.SEARCH),
) -> VerificationOut:  # fmt: skip
    """Record one's decision on a match of one's organisation's search: confirmed
    (the person checked it is the same person) or rejected."""
    entry = _own_search(services, actor, search_id)
    _refuse_if_purged(services, search_id)
    if body.face_id not in json.loads(entry.details)["face_ids"]:
        raise NotFound(f"face {body.face_id} was not among the matches of search {search_id}")
    store = services.audit.store
    verification_id = store.add_verification(
        search_id, body.face_id, body.decision, actor.username, now()
    )
    services.record(actor, ResultVerified(search_id, body.face_id, body.decision,
                                          verification_id))  # fmt: skip
    return _verification_out(services, verification_id)


@router.post("/verifications/{verification_id}/confirm", response_model=VerificationOut)
def confirm_verification(
    verification_id: int, services: ServicesDep, actor: Actor = require(Permission.SEARCH)
) -> VerificationOut:
    """A second person confirms a decision (required where the settings say so)."""
    found = services.audit.store.verification(verification_id)
    if found is None:
        raise NotFound(f"no verification with id {verification_id}")
    _own_search(services, actor, found["search_seq"])
    if found["decided_by"] == actor.username:
        raise PermissionDenied("a second confirmation must come from another person")
    services.audit.store.confirm_verification(verification_id, actor.username)
    services.record(
        actor,
        ResultVerified(
            found["search_seq"],
            found["face_id"],
            found["decision"],
            verification_id,
            verification_id,
        ),
    )
    return _verification_out(services, verification_id)


@router.post("/{search_id}/authorisation", status_code=201)
def confirm_authorisation(
    search_id: int, body: AuthorisationIn, services: ServicesDep,
    actor: Actor = require(Permission.SEARCH),
) -> dict:  # fmt: skip
    """Give the authorisation reference of a search that went ahead as pending."""
    entry = _own_search(services, actor, search_id)
    if not json.loads(entry.details).get("authorisation_pending"):
        raise Conflict(f"search {search_id} was not pending an authorisation")
    _refuse_if_purged(services, search_id)
    done = services.audit.store.query(action="authorisation", search_seq=search_id, limit=1)
    if done:
        raise Conflict(f"search {search_id} is already authorised")
    logged = services.record(actor, AuthorisationConfirmed(search_id, body.reference))
    return {"search_id": search_id, "authorisation": body.reference, "entry": logged.seq}


def _refuse_if_purged(services: Services, search_id: int) -> None:
    if services.audit.store.query(action="pending_expired", search_seq=search_id, limit=1):
        raise Conflict(f"search {search_id} was never authorised in time; its results were purged")


def _own_search(services: Services, actor: Actor, search_id: int) -> Entry:
    found = services.audit.store.query(organisation_id=actor.organisation_id, action="search",
                                       seq=search_id, limit=1)  # fmt: skip
    if not found:
        raise NotFound(f"no search with id {search_id}")
    return found[0]


def _verification_out(services: Services, verification_id: int) -> VerificationOut:
    v = services.audit.store.verification(verification_id)
    assert v is not None
    second = services.settings.governance.second_confirmation
    return VerificationOut(
        id=v["id"], search_id=v["search_seq"], face_id=v["face_id"], decision=v["decision"],
        decided_by=v["decided_by"], confirmed_by=v["confirmed_by"],
        final=not second or v["confirmed_by"] is not None,
    )  # fmt: skip
