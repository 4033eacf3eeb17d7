"""The tamper-evident audit log: typed events, a hash chain, optional HMAC signatures.

Each entry's hash is sha256 over the canonical JSON of its content (sequence
number, time, actor, organisation, origin, action, details) followed by the
previous entry's hash. Editing any field, deleting or inserting an entry, or
reordering entries breaks the chain at that entry, which `verify` names. An
HMAC-SHA256 signature with a key kept outside the catalog (optional) also stops
someone who can write the catalog from rebuilding a consistent chain.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from ..clock import now
from ..store.audit import GENESIS, AuditStore, Entry


@dataclass(frozen=True)
class Who:
    """Who acted and from where: an account, or the OS user of the command line."""

    actor: str
    organisation_id: int | None
    origin: str  # client address, or "cli"

    @classmethod
    def cli(cls, organisation_id: int | None = None) -> Who:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(f"cli:{user}", organisation_id, "cli")


@dataclass(frozen=True)
class Event:
    action: ClassVar[str]


@dataclass(frozen=True)
class SearchPerformed(Event):
    action: ClassVar[str] = "search"
    purpose: str
    case: str
    authorisation: str | None
    probe_sha256: str | None  # the probe photo itself is never kept
    probe_face_id: int | None
    collections: list[str]
    face_ids: list[int]
    scores: list[float]
    searched_faces: int
    access_request: bool = False
    authorisation_pending: bool = False
    person_id: int | None = None  # a search by all of a person's faces (people/)


@dataclass(frozen=True)
class AuthorisationConfirmed(Event):
    action: ClassVar[str] = "authorisation"
    search_seq: int
    authorisation: str


@dataclass(frozen=True)
class PendingExpired(Event):
    """A pending search's authorisation never came: its results were purged."""

    action: ClassVar[str] = "pending_expired"
    search_seq: int
    verifications_purged: int


@dataclass(frozen=True)
class SearchRefused(Event):
    action: ClassVar[str] = "search_refused"
    reason: str


@dataclass(frozen=True)
class ResultVerified(Event):
    action: ClassVar[str] = "verify"
    search_seq: int
    face_id: int
    decision: str
    verification_id: int
    confirms: int | None = None


@dataclass(frozen=True)
class ImageViewed(Event):
    action: ClassVar[str] = "view"
    image_id: int | None = None
    face_id: int | None = None
    what: str = "image"


@dataclass(frozen=True)
class Exported(Event):
    action: ClassVar[str] = "export"
    what: str
    rows: int
    filters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IngestStarted(Event):
    action: ClassVar[str] = "ingest"
    collection: str
    inputs: list[str]
    job_id: int | None = None


@dataclass(frozen=True)
class IngestFinished(Event):
    action: ClassVar[str] = "ingest_finished"
    collection: str
    status: str
    images: int
    faces: int
    blocked: int
    run_id: int


@dataclass(frozen=True)
class JobTakenOver(Event):
    """A server took over an ingest job whose server had died (its lease expired)."""

    action: ClassVar[str] = "job_taken_over"
    job_id: int
    collection: str
    from_server: str
    to_server: str


@dataclass(frozen=True)
class BackupMade(Event):
    """`facesearch backup`: a copy of the store, and where its key file went (if anywhere)."""

    action: ClassVar[str] = "backup"
    destination: str
    catalog: str
    files: int
    bytes: int
    key_file: str | None


@dataclass(frozen=True)
class Restored(Event):
    """`facesearch restore`: recorded in the restored store, after the backup's last entry."""

    action: ClassVar[str] = "restore"
    source: str
    made_at: str
    files: int


@dataclass(frozen=True)
class FacesErased(Event):
    action: ClassVar[str] = "erase"
    face_ids: list[int]
    images_deleted: int
    reference: str
    blocklisted: int
    # What the request named, where it named video tracks or whole videos (image ids).
    track_ids: list[int] = field(default_factory=list)
    video_ids: list[int] = field(default_factory=list)
    person_ids: list[int] = field(default_factory=list)  # persons (people/) named


@dataclass(frozen=True)
class AccessReported(Event):
    action: ClassVar[str] = "access_report"
    reference: str
    face_ids: list[int]
    received_at: str | None
    answered_at: str


@dataclass(frozen=True)
class CollectionChanged(Event):
    action: ClassVar[str] = "collection"
    collection: str
    change: str  # created, retention, deleted, shredded


@dataclass(frozen=True)
class RetentionPurged(Event):
    action: ClassVar[str] = "retention_purge"
    collection: str
    images: int
    faces: int


@dataclass(frozen=True)
class AccountChanged(Event):
    action: ClassVar[str] = "account"
    target: str
    change: str


@dataclass(frozen=True)
class PersonChanged(Event):
    """A human operation on persons (people/): what it did, never a name."""

    action: ClassVar[str] = "person"
    operation: str  # name, hide, show, merge, split, not_this_person, undo, erase, recluster
    persons: list[int]
    operation_id: int | None = None
    face_ids: list[int] = field(default_factory=list)
    undone: int | None = None  # the operation an undo put back


@dataclass(frozen=True)
class LoginSucceeded(Event):
    action: ClassVar[str] = "login"
    username: str


@dataclass(frozen=True)
class LoginFailed(Event):
    action: ClassVar[str] = "login_failed"
    username: str


@dataclass(frozen=True)
class LoginLocked(Event):
    """Logins refused for a while after too many failures; or such a lock lifted."""

    action: ClassVar[str] = "login_locked"
    kind: str  # "account" or "address"
    key: str
    seconds: float  # 0 when an administrator lifted the lock


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_of(entry: Entry) -> dict:
    return {
        "seq": entry.seq, "at": entry.at, "actor": entry.actor,
        "organisation_id": entry.organisation_id, "origin": entry.origin,
        "action": entry.action, "details": json.loads(entry.details),
    }  # fmt: skip


def chain_hash(content: dict, prev_hash: str) -> str:
    return hashlib.sha256((canonical(content) + prev_hash).encode()).hexdigest()


def sign(key: bytes | None, digest: str) -> str | None:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else None


class AuditLog:
    def __init__(self, store: AuditStore, key: bytes | None = None) -> None:
        self.store = store
        self.key = key

    def record(self, who: Who, event: Event) -> Entry:
        details = canonical(asdict(event))

        def seal(seq: int, prev_hash: str) -> Entry:
            at = now()
            content = {
                "seq": seq, "at": at, "actor": who.actor, "organisation_id": who.organisation_id,
                "origin": who.origin, "action": event.action, "details": json.loads(details),
            }  # fmt: skip
            digest = chain_hash(content, prev_hash)
            return Entry(
                seq, at, who.actor, who.organisation_id, who.origin, event.action, details,
                prev_hash, digest, sign(self.key, digest),
            )  # fmt: skip

        return self.store.append(seal)

    def verify(self, anchor: tuple[int, str] | None = None) -> Verification:
        """Walk the whole chain; the first entry that does not hold is named.

        `anchor` (a sequence number and the hash it had, noted elsewhere earlier)
        also catches the one change a chain cannot show by itself: the newest
        entries removed."""
        prev = GENESIS
        count = 0
        hashes: dict[int, str] = {}
        for expected_seq, entry in enumerate(self.store.entries(), start=1):
            count = expected_seq
            problem = None
            try:
                content = content_of(entry)
            except json.JSONDecodeError:
                problem = "its details are not valid JSON"
            else:
                if entry.seq != expected_seq:
                    problem = f"sequence number {entry.seq} where {expected_seq} was expected"
                elif entry.prev_hash != prev:
                    problem = "it does not point to the previous entry's hash"
                elif chain_hash(content, entry.prev_hash) != entry.hash:
                    problem = "its content does not match its hash"
                elif self.key and not hmac.compare_digest(
                    entry.signature or "", sign(self.key, entry.hash) or ""
                ):
                    problem = "its signature does not match the audit key"
            if problem:
                return Verification(False, count - 1, expected_seq, entry.seq, problem)
            prev = entry.hash
            hashes[entry.seq] = entry.hash
        if anchor is not None and hashes.get(anchor[0]) != anchor[1]:
            problem = (
                "the anchored entry is missing (entries were removed from the end)"
                if anchor[0] not in hashes
                else "the anchored entry's hash differs from the one noted"
            )
            return Verification(False, count, anchor[0], anchor[0], problem, prev, count)
        return Verification(True, count, None, None, None, prev, count)


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries_checked: int
    broken_position: int | None  # 1-based position in storage order
    broken_seq: int | None
    problem: str | None
    head_hash: str | None = None  # note it, with head_seq, to anchor a later check
    head_seq: int | None = None

    def message(self) -> str:
        if self.ok:
            return (
                f"audit log intact: {self.entries_checked} entries, chain and hashes verified; "
                f"head {self.head_seq}:{self.head_hash}"
            )
        return (
            f"audit log BROKEN at entry #{self.broken_position} (seq {self.broken_seq}): "
            f"{self.problem}; the {self.entries_checked} entries before it verify"
        )


def audit_log(settings, transaction, read=None) -> AuditLog:
    """The audit log over a store's `transaction` (and `read` connection), signing
    with the configured key."""
    key = settings.crypto.audit_key
    store = AuditStore(transaction, read)
    return AuditLog(store, key.get_secret_value().encode() if key else None)
