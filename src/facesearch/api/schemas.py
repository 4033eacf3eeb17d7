"""Request and response shapes. Responses never carry embeddings, hashes or secrets."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import PurePath
from typing import Literal

from pydantic import BaseModel, Field

from ..types import LEAD_NOTICE, Hit

COLLECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$"


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def of(cls, box: tuple[float, float, float, float]) -> Box:
        x, y, w, h = (round(v) for v in box)
        return cls(x=x, y=y, w=w, h=h)


# search


class ProbeFace(BaseModel):
    index: int
    box: Box
    score: float = Field(description="detector confidence")
    quality: float
    thumbnail: str = Field(description="the aligned face as a JPEG data URI")


class Probe(BaseModel):
    width: int
    height: int
    faces: list[ProbeFace]


class PersonBrief(BaseModel):
    """The person a stored face belongs to (people/), with their number of appearances."""

    id: int
    name: str | None
    faces: int
    url: str


class VideoMoment(BaseModel):
    """Where in a video a matched face is: its track (one person's stretch on screen in one
    shot), the moment of this face, the track's span and the video's length."""

    track_id: int
    time_ms: int = Field(description="the moment of this face, from the video's start")
    start_ms: int = Field(description="when the track begins")
    end_ms: int = Field(description="when the track ends (its last sampled frame)")
    duration_ms: int = Field(description="the video's length")


class Match(BaseModel):
    """One ranked result. Fields named like `Hit`'s are filled from it by name,
    so a field added to `Hit` (a calibrated band, say) needs one line here."""

    rank: int
    score: float = Field(description="cosine similarity of the two embeddings")
    estimated_fmr: float | None = Field(
        None, description="share of pairs of two different people scoring this high"
    )
    band: str | None = Field(None, description="strong lead, possible lead, weak or unlikely")
    band_gallery_size: int | None = Field(
        None, description="gallery size the band was calibrated at; larger galleries weaken it"
    )
    quality: float | None = Field(None, description="the stored face's quality, 0..1")
    face_id: int
    image_id: int
    collection: str
    filename: str
    source_url: str | None
    captured_at: str | None
    box: Box
    thumbnail_url: str
    image_url: str
    face_url: str
    person: PersonBrief | None = Field(None, description="the person this face belongs to")
    video: VideoMoment | None = Field(None, description="set when the face is in a video")
    clip_url: str | None = Field(
        None, description="the video, served with range requests (play it from video.time_ms)"
    )

    @classmethod
    def from_hit(cls, hit: Hit) -> Match:
        values = {
            f.name: getattr(hit, f.name)
            for f in dataclasses.fields(hit)
            if f.name in cls.model_fields and f.name != "box"
        }
        values["score"] = round(hit.score, 4)
        return cls(
            **values, box=Box.of(hit.box), filename=PurePath(hit.path).name,
            thumbnail_url=f"/api/faces/{hit.face_id}/thumbnail",
            image_url=f"/api/images/{hit.image_id}/file", face_url=f"/api/faces/{hit.face_id}",
            clip_url=f"/api/images/{hit.image_id}/clip" if hit.video else None,
        )  # fmt: skip


class SearchResponse(BaseModel):
    notice: str = LEAD_NOTICE
    model: str
    face: int | None = Field(description="the probe face searched (index into probe.faces)")
    probe_face_id: int | None = Field(None, description="the stored face searched, if any")
    probe: Probe | None
    searched_faces: int
    matches: list[Match]
    search_id: int = Field(description="the audit log entry of this search; verify matches on it")
    purpose: str
    case: str


class VerificationIn(BaseModel):
    face_id: int
    decision: Literal["confirmed", "rejected"]


class VerificationOut(BaseModel):
    id: int
    search_id: int
    face_id: int
    decision: str
    decided_by: str
    confirmed_by: str | None
    final: bool = Field(description="false while a required second confirmation is missing")


# collections and jobs


class CollectionCreate(BaseModel):
    name: str = Field(pattern=COLLECTION_NAME, description="letters, digits, space, _ . -")
    source: str = Field(min_length=1, max_length=500)
    legal_basis: str = Field(min_length=1, max_length=500)
    retention_days: int | None = Field(None, ge=1, le=36500)


class CollectionUpdate(BaseModel):
    retention_days: int | None = Field(ge=1, le=36500)


class CollectionOut(BaseModel):
    name: str
    organisation: str | None
    source: str
    legal_basis: str
    retention_days: int | None
    created_at: str
    images: int
    faces: int
    errors: int


class JobCreate(BaseModel):
    collection: str
    paths: list[str] = Field(
        min_length=1, max_length=100,
        description="folders, image files or CSV/JSONL manifests under an allowed root",
    )  # fmt: skip


class JobOut(BaseModel):
    id: int
    collection: str
    kind: str
    inputs: list[str]
    status: str
    total: int
    done: int
    images: int
    faces: int
    duplicates: int
    errors: int
    rate: float = Field(description="images per second")
    video_seconds: float = Field(0.0, description="seconds of video stored by this run")
    video_seconds_total: float = Field(
        0.0, description="seconds of video this run has to analyse, as far as probed yet"
    )
    message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str

    @classmethod
    def of(cls, job) -> JobOut:
        values = {f: getattr(job, f) for f in cls.model_fields if f != "inputs"}
        # Upload folders are the server's business; the paths a client gave are its own.
        return cls(**values, inputs=job.inputs if job.kind == "paths" else [])


# images and faces


class FaceBrief(BaseModel):
    id: int
    box: Box
    det_score: float
    quality: float
    thumbnail_url: str
    video: VideoMoment | None = Field(None, description="set for a face of a video")


class TrackOut(BaseModel):
    """One person's stretch on screen in one shot of a video, with its stored faces."""

    id: int
    segment: int
    start_ms: int
    end_ms: int
    detections: int = Field(description="faces linked into the track across sampled frames")
    face_ids: list[int]


class ImageOut(BaseModel):
    id: int
    collection: str
    filename: str
    source_url: str | None
    captured_at: str | None
    caption: str | None
    width: int
    height: int
    face_count: int
    added_at: str
    file_url: str
    faces: list[FaceBrief]
    kind: str = Field("photo", description="photo or video")
    duration_ms: int | None = Field(None, description="a video's length")
    complete: bool = Field(True, description="false while a video's segments are being stored")
    clip_url: str | None = Field(None, description="a video, served with range requests")
    tracks: list[TrackOut] | None = Field(None, description="a video's tracks, in time order")


class FaceOut(BaseModel):
    id: int
    image_id: int
    collection: str
    filename: str
    source_url: str | None
    captured_at: str | None
    box: Box
    det_score: float
    quality: float
    model: str
    model_version: str
    thumbnail_url: str
    image_url: str
    video: VideoMoment | None = Field(None, description="set for a face of a video")
    clip_url: str | None = Field(None, description="its video, served with range requests")


# accounts


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    id: int
    username: str
    organisation: str
    role: str
    permissions: list[str]
    must_change_password: bool
    via: str


class LoginOut(BaseModel):
    csrf_token: str
    me: Me


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class OrganisationCreate(BaseModel):
    name: str = Field(pattern=r"^\S(.{0,62}\S)?$")


class OrganisationOut(BaseModel):
    id: int
    name: str
    created_at: str


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern="^(administrator|supervisor|investigator|auditor)$")
    organisation_id: int | None = Field(None, description="default: the administrator's own")
    password: str | None = Field(None, description="default: a generated one-time password")
    must_change_password: bool = True
    expires_at: datetime | None = Field(None, description="a trial account ends then")


class UserUpdate(BaseModel):
    role: str | None = Field(None, pattern="^(administrator|supervisor|investigator|auditor)$")
    active: bool | None = None
    expires_at: datetime | None = None
    reset_password: bool = False


class UserOut(BaseModel):
    id: int
    username: str
    organisation_id: int
    organisation: str
    role: str
    active: bool
    must_change_password: bool
    expires_at: str | None
    created_at: str
    last_login_at: str | None

    @classmethod
    def of(cls, user) -> UserOut:
        return cls(**{f: getattr(user, f) for f in cls.model_fields})


class UserCreated(UserOut):
    one_time_password: str | None = Field(None, description="shown once, when generated")


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    days: int | None = Field(None, ge=1, le=3650)
    user_id: int | None = Field(None, description="another user's (administrators only)")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    username: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    last_used_at: str | None

    @classmethod
    def of(cls, token) -> TokenOut:
        return cls(**{f: getattr(token, f) for f in cls.model_fields})


class TokenCreated(TokenOut):
    token: str = Field(description="shown this once; only its hash is stored")


class AuthorisationIn(BaseModel):
    reference: str = Field(min_length=1, max_length=200)


class ErasureIn(BaseModel):
    face_ids: list[int] = Field(default_factory=list, max_length=10_000)
    track_ids: list[int] = Field(
        default_factory=list, max_length=10_000, description="video tracks: every face of each"
    )
    video_ids: list[int] = Field(
        default_factory=list, max_length=1_000, description="videos (image ids): all their faces"
    )
    person_ids: list[int] = Field(
        default_factory=list, max_length=1_000, description="persons (people/): all their faces"
    )
    reference: str = Field(min_length=1, max_length=200, description="the erasure request")
