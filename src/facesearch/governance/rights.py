"""Data-subject rights: access reports, erasure with a block-list, retention purges.

Every function here records what it did in the audit log; the engine does the
deleting (`Engine.erase_faces`, `Engine.purge_expired`) and knows nothing of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..clock import now
from ..engine import Engine
from ..pipeline.video import time_text
from ..store import videos
from ..store.catalog import Collection
from ..store.people import PeopleStore
from . import actions
from .audit import AccessReported, AuditLog, FacesErased, PendingExpired, RetentionPurged, Who
from .blocklist import BLOCKLIST_KEY, Blocklist
from .purpose import SearchPurpose, expired_pending

__all__ = ["BLOCKLIST_KEY", "Blocklist", "HeldFace", "access_report", "erase",
           "purge_expired_pending", "purge_retention"]  # fmt: skip


@dataclass
class HeldFace:
    face_id: int
    score: float
    collection: str
    path: str
    source_url: str | None
    captured_at: str | None
    searches: list[dict]
    # A face of a video: its track and moment, and the moment as hh:mm:ss.mmm.
    video: dict | None = None


def access_report(
    engine: Engine, audit: AuditLog, who: Who, photo: bytes,
    collections: list[str | Collection] | None, reference: str, received_at: str | None,
    threshold: float, top_k: int = 200,
) -> tuple[list[HeldFace], int]:  # fmt: skip
    """Every face of the person in `photo` held in `collections` (None: every one of
    `who`'s organisation), with the searches that returned each; the search itself is
    logged as an access request. Returns the faces and the logged search's number."""
    caller = actions.Caller(engine.settings, engine, audit, who)
    purpose = SearchPurpose(actions.ACCESS_REQUEST, reference, None)
    result, logged = actions.search(caller, purpose, photo, top_k, None, collections,
                                    min_score=threshold, access_request=True)  # fmt: skip
    hits = result.hits
    returned = audit.store.searches_returning([h.face_id for h in hits])
    held = [
        HeldFace(
            h.face_id, round(h.score, 4), h.collection, h.path, h.source_url, h.captured_at,
            [{"seq": e.seq, "at": e.at, "actor": e.actor, "access_request": '"access_request":true'
              in e.details} for e in returned[h.face_id] if e.seq != logged.seq],
            h.video | {"time": time_text(h.video["time_ms"])} if h.video else None,
        )
        for h in hits
    ]  # fmt: skip
    audit.record(who, AccessReported(reference, [h.face_id for h in hits], received_at, now()))
    return held, logged.seq


def faces_of_videos(engine: Engine, track_ids: list[int], video_ids: list[int]) -> list[int]:
    """The stored faces of these video tracks and whole videos (by image id)."""
    found: list[int] = []
    for track_id in track_ids:
        found += videos.track_face_ids(engine.catalog, track_id)
    for video_id in video_ids:
        found += videos.video_face_ids(engine.catalog, video_id)
    return found


def persons_held(engine: Engine, organisation_id: int | None, held: list[HeldFace]) -> list[dict]:
    """The persons (people/) that the held faces belong to, each with all its faces:
    an access report tells the data subject about the grouping too."""
    store = PeopleStore(engine.catalog)
    found = store.persons_of_faces(organisation_id, [h.face_id for h in held])
    persons = []
    for person_id in sorted({p["id"] for p in found.values()}):
        org = store.organisation_of_person(person_id)
        person = store.person(org, person_id)
        faces = [
            {k: a[k] for k in ("face_id", "collection", "path", "source_url", "captured_at")}
            for a in store.appearances(org, person_id)
        ]
        persons.append({"id": person.id, "name": person.name, "faces": faces})
    return persons


def faces_of_persons(
    engine: Engine, organisation_id: int | None, person_ids: list[int]
) -> list[int]:
    """Every face of these persons (another organisation's person is not found)."""
    store = PeopleStore(engine.catalog)
    found: list[int] = []
    for person_id in person_ids:
        org = organisation_id
        if org is None:  # the command line acts for the whole installation
            org = store.organisation_of_person(person_id)
        found += store.erase_person(org if org is not None else -1, person_id)
    return found


def erase(
    engine: Engine, audit: AuditLog, blocklist: Blocklist, who: Who, face_ids: list[int],
    reference: str, uploads_dir: Path | None = None, track_ids: list[int] | None = None,
    video_ids: list[int] | None = None, person_ids: list[int] | None = None,
) -> FacesErased:  # fmt: skip
    """Erase faces from catalog and index, block-list their embeddings, log it.

    `audit` and `blocklist` must write through the engine's catalog, so the
    deletion, the block-list entries and the log entry commit together or not
    at all. An image left without faces is deleted too, and its file with it
    when the file is one the server stored (an upload); archive files are not
    ours to delete. `track_ids` adds every face of those video tracks (a track is one
    person); `video_ids` erases whole videos with everyone in them, whose faces are not
    block-listed: the request is about the video, not about each person in it.
    `person_ids` adds every face of those persons (people/), block-listed; the persons
    go with their faces."""
    track_ids, video_ids = list(track_ids or []), list(video_ids or [])
    with engine.catalog.transaction():
        grouped = faces_of_persons(engine, who.organisation_id, list(person_ids or []))
        person = sorted(set(face_ids) | set(faces_of_videos(engine, track_ids, [])) | set(grouped))
        vectors = [engine.catalog.embedding(i)[0] for i in person]
        face_ids = sorted(set(person) | set(faces_of_videos(engine, [], video_ids)))
        blocked = (
            blocklist.add(np.vstack(vectors), who.organisation_id, reference) if vectors else 0
        )
        deleted, paths = engine.erase_faces(face_ids)
        event = FacesErased(deleted, len(paths), reference, blocked, track_ids, video_ids,
                            sorted({int(p) for p in person_ids or []}))  # fmt: skip
        audit.record(who, event)
    for path in paths:
        _delete_if_upload(Path(path), uploads_dir)
    return event


def purge_retention(engine: Engine, audit: AuditLog, who: Who, uploads_dir: Path | None) -> list:
    """Purge what outlived its retention; `audit` writes through the engine's catalog so
    the purge and its log entries commit together."""
    with engine.catalog.transaction():
        purged = engine.purge_expired()
        for item in purged:
            audit.record(who, RetentionPurged(item["collection"], item["images"], item["faces"]))
    for item in purged:
        for path in item["paths"]:
            _delete_if_upload(Path(path), uploads_dir)
    return purged


def purge_expired_pending(audit: AuditLog, who: Who, hours: float | None) -> list[int]:
    """Purge the results of pending searches whose authorisation never came in time."""
    if hours is None:
        return []
    entries = list(audit.store.entries())
    expired = expired_pending(entries, hours, datetime.now(UTC))
    for seq in expired:
        purged = audit.store.delete_verifications(seq)
        audit.record(who, PendingExpired(seq, purged))
    return expired


def _delete_if_upload(path: Path, uploads_dir: Path | None) -> None:
    if uploads_dir is None:
        return
    try:
        path.resolve().relative_to(uploads_dir.resolve())
    except ValueError:
        return
    path.unlink(missing_ok=True)
