"""Governed actions: the one path every front door takes for what the audit log shows.

The command line, the API routes, the web pages (through the API) and the rights
functions describe who acts (`Caller`) and call these. Each action binds what
must be bound (a search's purpose and case), scopes collections to the caller's
organisation, calls the engine and records its event. Each event built here is
built nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

from ..clock import now
from ..config import DecodeSettings, Settings
from ..engine import Engine, SearchResult
from ..errors import Conflict, NotFound
from ..ingest import IngestReport
from ..store.audit import Entry
from ..store.catalog import Catalog, Collection, FaceRow
from ..store.db import Database
from ..types import Hit
from . import oversight
from .audit import (
    AccountChanged,
    AuditLog,
    AuthorisationConfirmed,
    BackupMade,
    CollectionChanged,
    Exported,
    ImageViewed,
    IngestFinished,
    IngestStarted,
    Restored,
    ResultVerified,
    SearchPerformed,
    SearchRefused,
    Who,
    audit_log,
)
from .auth import PermissionDenied
from .blocklist import Blocklist
from .purpose import PurposeRequired, SearchPurpose, bind


def catalog_audit(settings: Settings, catalog: Catalog) -> AuditLog:
    """The audit log written in `catalog`'s transactions, so that a change made
    through that catalog and its entry commit together."""
    return audit_log(settings, catalog.transaction, lambda: catalog.conn)


def engine_audit(engine: Engine) -> AuditLog:
    """The audit log in the engine's catalog transactions (an erasure, a purge)."""
    return catalog_audit(engine.settings, engine.catalog)


def connections_audit(settings: Settings, db: Database) -> AuditLog:
    """The audit log over a server's one database (store/db.py), outside any catalog."""
    return audit_log(settings, db.transaction, lambda: db.conn)


def governed(engine: Engine) -> tuple[AuditLog, Blocklist]:
    """The audit log in the engine's catalog transactions, and the block-list."""
    audit = engine_audit(engine)
    return audit, Blocklist(engine, audit.store, engine.settings.governance.blocklist_threshold)


@dataclass(frozen=True)
class Caller:
    """Who acts through which engine, and where the entries go.

    `catalog` answers the reads of scoping (the server's per-thread catalog; the
    engine's when None); `guard` is held around the engine calls that read through
    the engine's own catalog connection (a person search; the server's write lock).
    Photo and stored-face searches run without it, many at once (engine.py)."""

    settings: Settings
    engine: Engine
    audit: AuditLog
    who: Who
    catalog: Catalog | None = None
    guard: Callable[[], AbstractContextManager] = field(default=nullcontext)

    @classmethod
    def command_line(cls, engine: Engine, organisation_id: int | None = None) -> Caller:
        """The OS user at the command line: every organisation's data when
        `organisation_id` is None, as the operator of the installation."""
        return cls(engine.settings, engine, engine_audit(engine), Who.cli(organisation_id))

    @property
    def reads(self) -> Catalog:
        return self.catalog or self.engine.catalog

    def record(self, event) -> Entry:
        return self.audit.record(self.who, event)


# Scoping


def owned_collection(
    catalog: Catalog, organisation_id: int | None, name: str | Collection
) -> Collection:
    """The collection `name` of organisation `organisation_id`; another organisation's
    is answered as not found. Without an organisation (the command line's operator)
    the name must be one that only one organisation uses."""
    if isinstance(name, Collection):
        found: Collection | None = name
    elif organisation_id is None:
        return catalog.collection(name)
    else:
        try:
            found = catalog.collection(name, organisation_id)
        except NotFound:
            found = None
    if found is None or (organisation_id is not None and found.organisation_id != organisation_id):
        raise NotFound(f"no collection named {getattr(name, 'name', name)!r}")
    return found


def owned_face(catalog: Catalog, organisation_id: int | None, face_id: int) -> FaceRow:
    """The stored face `face_id`, if it belongs to organisation `organisation_id`
    (any organisation's when that is None)."""
    row = catalog.faces([face_id]).get(face_id)
    # By the image's organisation: another organisation may use the same collection name.
    if row is None or (
        organisation_id is not None
        and catalog.image(row.image_id)["organisation_id"] != organisation_id
    ):
        raise NotFound(f"no face with id {face_id}")
    return row


def collection(caller: Caller, name: str | Collection) -> Collection:
    """The caller's collection `name` (see `owned_collection`)."""
    return owned_collection(caller.reads, caller.who.organisation_id, name)


def own_face(caller: Caller, face_id: int) -> FaceRow:
    """The caller's stored face `face_id` (see `owned_face`)."""
    return owned_face(caller.reads, caller.who.organisation_id, face_id)


def scope(caller: Caller, names: list[str | Collection] | None) -> list[Collection] | None:
    """The collections a caller's search covers: those named, else every one of the
    caller's organisation. None (every collection) only for a caller above the
    organisations, the command line's operator."""
    if names:
        return [collection(caller, name) for name in names]
    if caller.who.organisation_id is None:
        return None
    rows = caller.reads.collections(caller.who.organisation_id)
    return [collection(caller, row["name"]) for row in rows]


# Searches


def bind_purpose(
    caller: Caller, purpose: str | None, case: str | None, authorisation: str | None
) -> SearchPurpose:
    """The search's purpose and case, or a refusal, which is recorded."""
    try:
        return bind(caller.settings.governance, purpose, case, authorisation)
    except PurposeRequired as exc:
        caller.record(SearchRefused(str(exc)))
        raise


ACCESS_REQUEST = "data subject access request"


def search(
    caller: Caller, bound: SearchPurpose, photo: bytes, top: int, face: int | None = None,
    collections: list[str | Collection] | None = None, limits: DecodeSettings | None = None,
    min_score: float | None = None, access_request: bool = False,
) -> tuple[SearchResult, Entry]:  # fmt: skip
    """Rank the faces of the caller's collections by similarity to a face of `photo`;
    the result and its audit entry (whose number is the search's id).
    Only the probe's hash is recorded; `min_score` leaves weaker matches out of the
    answer and the record alike. `access_request`: the search of a data-subject
    access request (purpose ACCESS_REQUEST, the request's reference as its case)."""
    chosen = scope(caller, collections)
    result = caller.engine.search(photo, top, face, chosen, limits)
    if min_score is not None:
        result = replace(result, hits=[h for h in result.hits if h.score >= min_score])
    entry = _searched(caller, bound, hashlib.sha256(photo).hexdigest(), None, chosen,
                      result.hits, result.searched_faces, access_request)  # fmt: skip
    return result, entry


def search_face(
    caller: Caller, bound: SearchPurpose, face_id: int, top: int,
    collections: list[str | Collection] | None = None,
) -> tuple[list[Hit], int, Entry]:  # fmt: skip
    """Rank the faces of the caller's collections by similarity to a stored face: the
    matches, how many faces were searched, and the search's audit entry."""
    own_face(caller, face_id)
    chosen = scope(caller, collections)
    hits, searched = caller.engine.search_face(face_id, top, chosen)
    return hits, searched, _searched(caller, bound, None, face_id, chosen, hits, searched)


def search_person(
    caller: Caller, bound: SearchPurpose, person_id: int, top: int, how: str = "max"
) -> tuple[list[Hit], int, Entry]:
    """Rank the faces of the caller's organisation against all of a person's faces."""
    organisation = int(caller.who.organisation_id or 0)
    with caller.guard():
        hits, searched, names = caller.engine.search_person(organisation, person_id, top, how)
    entry = _searched(caller, bound, None, None, names, hits, searched, person_id=person_id)
    return hits, searched, entry


def _searched(
    caller: Caller, bound: SearchPurpose, probe_sha256: str | None, probe_face_id: int | None,
    collections: list[Collection] | list[str] | None, hits: list[Hit], searched: int,
    access_request: bool = False, person_id: int | None = None,
) -> Entry:  # fmt: skip
    """The one place a search's record is made."""
    names = [c if isinstance(c, str) else c.name for c in collections or []]
    if collections is None:
        names = [row["name"] for row in caller.reads.collections(caller.who.organisation_id)]
    return caller.record(SearchPerformed(
        bound.purpose, bound.case, bound.authorisation, probe_sha256, probe_face_id, names,
        [h.face_id for h in hits], [round(h.score, 4) for h in hits], searched,
        access_request=access_request, authorisation_pending=bound.pending, person_id=person_id,
    ))  # fmt: skip


# Decisions on a search's matches


def verify_match(caller: Caller, search_id: int, face_id: int, decision: str) -> int:
    """Record the caller's decision on a match of one of their organisation's searches
    (confirmed: the same person; rejected); returns the verification's id."""
    entry = _own_search(caller, search_id)
    _refuse_if_purged(caller, search_id)
    if face_id not in json.loads(entry.details)["face_ids"]:
        raise NotFound(f"face {face_id} was not among the matches of search {search_id}")
    verification_id = caller.audit.store.add_verification(
        search_id, face_id, decision, caller.who.actor, now()
    )
    _verified(caller, search_id, face_id, decision, verification_id)
    return verification_id


def confirm_verification(caller: Caller, verification_id: int) -> None:
    """A second person confirms a decision (required where the settings say so)."""
    store = caller.audit.store
    found = store.verification(verification_id)
    if found is None:
        raise NotFound(f"no verification with id {verification_id}")
    _own_search(caller, found["search_seq"])
    if found["decided_by"] == caller.who.actor:
        raise PermissionDenied("a second confirmation must come from another person")
    store.confirm_verification(verification_id, caller.who.actor)
    _verified(caller, found["search_seq"], found["face_id"], found["decision"], verification_id,
              verification_id)  # fmt: skip


def _verified(
    caller: Caller, search_id: int, face_id: int, decision: str, verification_id: int,
    confirms: int | None = None,
) -> Entry:  # fmt: skip
    return caller.record(ResultVerified(search_id, face_id, decision, verification_id, confirms))


def confirm_authorisation(caller: Caller, search_id: int, reference: str) -> Entry:
    """The authorisation reference of a search that went ahead as pending."""
    entry = _own_search(caller, search_id)
    if not json.loads(entry.details).get("authorisation_pending"):
        raise Conflict(f"search {search_id} was not pending an authorisation")
    _refuse_if_purged(caller, search_id)
    if caller.audit.store.query(action="authorisation", search_seq=search_id, limit=1):
        raise Conflict(f"search {search_id} is already authorised")
    return caller.record(AuthorisationConfirmed(search_id, reference))


def _own_search(caller: Caller, search_id: int) -> Entry:
    found = caller.audit.store.query(organisation_id=caller.who.organisation_id,
                                     action="search", seq=search_id, limit=1)  # fmt: skip
    if not found:
        raise NotFound(f"no search with id {search_id}")
    return found[0]


def _refuse_if_purged(caller: Caller, search_id: int) -> None:
    if caller.audit.store.query(action="pending_expired", search_seq=search_id, limit=1):
        raise Conflict(f"search {search_id} was never authorised in time; its results were purged")


# Views, exports and ingests


def viewed(caller: Caller, image_id: int | None, face_id: int | None, what: str) -> Entry:
    """Someone looked at (or took away) an image or a face."""
    return caller.record(ImageViewed(image_id, face_id, what))


def audit_export(
    caller: Caller, deliver: Callable[[str], object], action: str | None = None,
    actor: str | None = None, case: str | None = None, since: str | None = None,
    until: str | None = None, limit: int = 100,
) -> int:  # fmt: skip
    """The caller's organisation's audit entries as CSV, handed to `deliver` and then
    recorded as an export; returns how many entries it holds."""
    rows = caller.audit.store.query(caller.who.organisation_id, action, actor, case, since,
                                    until, limit)  # fmt: skip
    deliver(oversight.to_csv(rows))
    caller.record(Exported("audit log", len(rows), {
        "action": action, "actor": actor, "case": case, "since": since, "until": until,
    }))  # fmt: skip
    return len(rows)


def ingest_started(
    caller: Caller, collection: str, inputs: list[str], job_id: int | None = None
) -> Entry:
    return caller.record(IngestStarted(collection, inputs, job_id))


def ingest_finished(
    caller: Caller, collection: str, status: str, images: int, faces: int, blocked: int,
    run_id: int,
) -> Entry:  # fmt: skip
    return caller.record(IngestFinished(collection, status, images, faces, blocked, run_id))


def ingest_ended(
    caller: Caller, collection: str, report: IngestReport | None,
    exc: BaseException | None = None,
) -> Entry:  # fmt: skip
    """How an ingest ended: from its report, or, where it stopped before its run
    began (a missing folder, a model that cannot be fetched), from the exception
    that stopped it."""
    if report is None:
        status = "interrupted" if exc is not None and not isinstance(exc, Exception) else "failed"
        return ingest_finished(caller, collection, status, 0, 0, 0, 0)
    status = report.status
    if exc is not None and status in ("running", "finished"):
        status = "failed" if isinstance(exc, Exception) else "interrupted"
    return ingest_finished(caller, collection, status, report.images, report.faces,
                           report.blocked, report.run_id)  # fmt: skip


# Collections and accounts (through the API)


def collection_changed(caller: Caller, collection: str, change: str) -> Entry:
    """A collection was created, its retention changed, or it was deleted."""
    return caller.record(CollectionChanged(collection, change))


def account_changed(caller: Caller, target: str, change: str) -> Entry:
    """An account or one of its tokens was created, changed, unlocked or revoked."""
    return caller.record(AccountChanged(target, change))


# Backups


def backup_made(caller: Caller, summary: dict) -> Entry:
    """`facesearch backup` finished: recorded in the store that was copied."""
    return caller.record(BackupMade(summary["backup"], summary["catalog"], summary["files"],
                                    summary["bytes"], summary["key_file"]))  # fmt: skip


def restored(caller: Caller, summary: dict) -> Entry:
    """`facesearch restore` finished: recorded in the restored store."""
    return caller.record(Restored(summary["restored"], summary["made"], summary["files"]))
