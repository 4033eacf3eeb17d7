"""Collections: declare, list, show, change retention, delete; upload images into one."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path, PurePath

from fastapi import APIRouter, File, Response, UploadFile, status

from ...errors import Conflict, ImageTooLarge, NotFound, UnsupportedImage
from ...governance import actions
from ...governance.auth import Actor, Permission
from ...pipeline.sources import MEDIA_SUFFIXES
from ...pipeline.video import is_video
from ...store.people import PeopleStore
from ..deps import ServicesDep, body_limit, require
from ..schemas import CollectionCreate, CollectionOut, CollectionUpdate, JobOut
from ..scope import caller, own_collection
from ..state import Services

router = APIRouter(prefix="/api/collections", tags=["collections"])
P = Permission


def _out(services: Services, actor: Actor, name: str) -> CollectionOut:
    for row in services.catalog.collections(actor.organisation_id):
        if row["name"] == name:
            return CollectionOut(**row)
    raise NotFound(f"no collection named {name!r}")


@router.get("", response_model=list[CollectionOut])
def list_collections(
    services: ServicesDep, actor: Actor = require(P.COLLECTIONS_READ)
) -> list[CollectionOut]:
    """The collections of one's organisation, with their declarations and counts."""
    return [CollectionOut(**row) for row in services.catalog.collections(actor.organisation_id)]


@router.post("", response_model=CollectionOut, status_code=status.HTTP_201_CREATED)
def create_collection(
    body: CollectionCreate, services: ServicesDep, actor: Actor = require(P.COLLECTIONS_WRITE)
) -> CollectionOut:
    """Declare a collection: its source and the legal basis for processing it.
    Nothing is ingested outside a declared collection."""
    services.catalog.create_collection(
        body.name, body.source, body.legal_basis, body.retention_days, actor.organisation_id
    )
    actions.collection_changed(caller(services, actor), body.name, "created")
    return _out(services, actor, body.name)


@router.get("/{name}", response_model=CollectionOut)
def get_collection(
    name: str, services: ServicesDep, actor: Actor = require(P.COLLECTIONS_READ)
) -> CollectionOut:
    return _out(services, actor, own_collection(services.catalog, actor, name).name)


@router.patch("/{name}", response_model=CollectionOut)
def update_collection(
    name: str, body: CollectionUpdate, services: ServicesDep,
    actor: Actor = require(P.COLLECTIONS_WRITE),
) -> CollectionOut:  # fmt: skip
    """Change the retention period (null keeps the collection until deleted)."""
    collection = own_collection(services.catalog, actor, name)
    services.catalog.set_retention(collection, body.retention_days)
    actions.collection_changed(
        caller(services, actor), name, f"retention {body.retention_days} days"
    )
    return _out(services, actor, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_collection(
    name: str, services: ServicesDep, actor: Actor = require(P.COLLECTIONS_WRITE)
) -> Response:
    """Delete a collection with its images, faces and uploaded files."""
    collection = own_collection(services.catalog, actor, name)
    if services.jobs.active_in(collection.id):
        raise Conflict(f"an ingest job is queued or running on {name!r}; cancel it first")
    services.catalog.delete_collection(collection)
    # Persons whose every face was in it go too (names and all).
    PeopleStore(services.catalog).remove_orphans(actor.organisation_id)
    actions.collection_changed(caller(services, actor), name, "deleted with its data key")
    shutil.rmtree(services.settings.uploads_dir / str(collection.id), ignore_errors=True)
    # The deletion is logged in the catalog: every index drops the faces at its next sync.
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _safe_name(filename: str, taken: set[str]) -> str:
    """The uploaded file's own name, made safe for the disk and unique in its folder."""
    stem = PurePath(filename.replace("\\", "/")).name
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip(".")[-100:] or "upload"
    name, number = clean, 1
    while name.lower() in taken:
        number += 1
        base = PurePath(clean)
        name = f"{base.stem}-{number}{base.suffix}"
    taken.add(name.lower())
    return name


@router.post(
    "/{name}/uploads", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED,
    dependencies=[body_limit("max_request_bytes")],
)  # fmt: skip
def upload_images(
    name: str, services: ServicesDep, files: list[UploadFile] = File(...),
    actor: Actor = require(P.INGEST),
) -> JobOut:  # fmt: skip
    """Upload images (multipart, field `files`) into a collection; they are
    ingested by a background job whose progress GET /api/jobs/{id} reports."""
    collection = own_collection(services.catalog, actor, name)
    limits = services.settings.api
    if len(files) > limits.max_upload_files:
        raise ImageTooLarge(f"{len(files)} files in one upload; at most {limits.max_upload_files}")
    for file in files:
        suffix = PurePath(file.filename or "").suffix.lower()
        if suffix not in MEDIA_SUFFIXES:
            raise UnsupportedImage(
                f"{file.filename!r} is not a supported image or video file "
                f"({', '.join(sorted(MEDIA_SUFFIXES))})"
            )
        limit = _upload_limit(services, file.filename or "")
        if file.size is not None and file.size > limit:
            raise ImageTooLarge(
                f"{file.filename!r} is {file.size:,} bytes, above the limit of {limit:,}"
            )
    folder = services.settings.uploads_dir / str(collection.id) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        taken: set[str] = set()
        for file in files:
            _save(file, folder / _safe_name(file.filename or "", taken),
                  _upload_limit(services, file.filename or ""))  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    job = services.runner.submit(collection.id, "upload", [folder], actor.user_id)
    actions.ingest_started(caller(services, actor), name, [f"upload of {len(files)} files"],
                           job.id)  # fmt: skip
    return JobOut.of(job)


def _upload_limit(services, filename: str) -> int:
    limits = services.settings.api
    return limits.max_upload_video_bytes if is_video(Path(filename)) else limits.max_upload_bytes


def _save(file: UploadFile, target: Path, limit: int) -> None:
    written = 0
    with target.open("wb") as out:
        while chunk := file.file.read(1024 * 1024):
            written += len(chunk)
            if written > limit:
                raise ImageTooLarge(
                    f"{file.filename!r} is larger than the limit of {limit:,} bytes"
                )
            out.write(chunk)
