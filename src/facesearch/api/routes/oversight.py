"""The audit log for supervisors and auditors, and data-subject rights requests.

Everything is scoped to the caller's organisation; the chain check covers the
whole installation's log (it reveals only whether and where it is broken).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from ...errors import FacesearchError, ImageTooLarge
from ...governance import actions, oversight
from ...governance.auth import Actor, Permission
from ...governance.rights import access_report, erase, persons_held
from ..deps import ServicesDep, body_limit, require
from ..schemas import ErasureIn
from ..scope import caller, own_collections, own_face, own_image, own_track, who_is

router = APIRouter(tags=["oversight"])


@router.get("/api/audit")
def audit_entries(
    services: ServicesDep,
    action: str | None = None, actor_name: str | None = Query(None, alias="actor"),
    case: str | None = None, since: str | None = None, until: str | None = None,
    limit: int = Query(500, ge=1, le=100_000), format: str = Query("json", pattern="^(json|csv)$"),
    actor: Actor = require(Permission.AUDIT_READ),
):  # fmt: skip
    """The organisation's audit entries, newest first, filtered; `format=csv` exports
    them (the export itself is logged)."""
    if format == "csv":
        exported: list[str] = []
        actions.audit_export(caller(services, actor), exported.append, action, actor_name, case,
                             since, until, limit)  # fmt: skip
        return Response(
            exported[0], media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
        )  # fmt: skip
    rows = services.audit.store.query(
        actor.organisation_id, action, actor_name, case, since, until, limit
    )
    return [oversight.entry_json(r) for r in rows]


@router.get("/api/audit/verify")
def audit_verify(services: ServicesDep, actor: Actor = require(Permission.AUDIT_READ)) -> dict:
    """Check the whole hash chain; names the first broken entry."""
    return services.audit.verify().__dict__


@router.get("/api/audit/report")
def audit_report(
    services: ServicesDep, since: str | None = None, until: str | None = None,
    actor: Actor = require(Permission.AUDIT_READ),
) -> dict:  # fmt: skip
    """Usage per user, organisation, day, purpose and case; anomaly flags; and the
    transparency report for the period."""
    rows = services.audit.store.query(actor.organisation_id, since=since, until=until,
                                      limit=10**9)  # fmt: skip
    return {
        "organisation": actor.organisation, "since": since, "until": until,
        "usage": oversight.usage(rows),
        "anomalies": oversight.anomalies(rows, services.settings.governance),
        "transparency": oversight.transparency(rows),
    }  # fmt: skip


@router.post("/api/rights/access", dependencies=[body_limit("max_upload_bytes")])
def rights_access(
    services: ServicesDep,
    photo: UploadFile = File(..., description="the person's photo"),
    reference: str = Form(..., min_length=1, description="the access request's reference"),
    received_at: datetime | None = Form(None, description="when the request came"),
    actor: Actor = require(Permission.RIGHTS),
) -> dict:  # fmt: skip
    """Every face of the person in `photo` held by the organisation, with the
    searches that returned each; logged as an access request."""
    limit = services.settings.api.max_upload_bytes
    data = photo.file.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLarge(f"the photo is above the limit of {limit:,} bytes")
    chosen = own_collections(services.catalog, actor)
    who = who_is(actor)
    held, seq = access_report(
        services.engine, services.audit, who, data, chosen, reference,
        received_at.isoformat() if received_at else None,
        services.settings.governance.access_threshold,
    )  # fmt: skip
    with services.write_lock:  # read through the engine's own catalog connection
        persons = persons_held(services.engine, actor.organisation_id, held)
    return {"reference": reference, "search_id": seq, "faces": [h.__dict__ for h in held],
            "persons": persons}  # fmt: skip


@router.post("/api/rights/erasures")
def rights_erase(
    body: ErasureIn, services: ServicesDep, actor: Actor = require(Permission.RIGHTS)
) -> dict:
    """Erase faces of the organisation from catalog, index and thumbnails, and keep
    the person out of future imports (block-list). `track_ids` erase every face of
    those video tracks (and block-list them: a track is one person); `video_ids`
    erase whole videos, without block-listing everyone in them."""
    if not (body.face_ids or body.track_ids or body.video_ids or body.person_ids):
        raise FacesearchError("name at least one face, track, video or person to erase")
    for face_id in body.face_ids:
        own_face(services.catalog, actor, face_id)
    for track_id in body.track_ids:
        own_track(services.catalog, actor, track_id)
    for video_id in body.video_ids:
        own_image(services.catalog, actor, video_id)
    who = who_is(actor)
    engine = services.engine
    # Written through the engine's catalog: erasure and its record commit together.
    audit, blocklist = actions.governed(engine)
    with services.write_lock:
        event = erase(engine, audit, blocklist, who, body.face_ids, body.reference,
                      services.settings.uploads_dir, body.track_ids, body.video_ids,
                      body.person_ids)  # fmt: skip
    return {"erased": event.face_ids, "images_deleted": event.images_deleted,
            "blocklisted": event.blocklisted}  # fmt: skip
