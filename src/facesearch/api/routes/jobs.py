"""Ingest jobs: start one over server-side folders or manifests, follow it, cancel it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastapi import APIRouter, Request, status
from fastapi.responses import StreamingResponse

from ...errors import NotFound
from ...governance import actions
from ...governance.auth import Actor, Permission, PermissionDenied
from ...store.jobs import Job
from ..deps import ServicesDep, require
from ..schemas import JobCreate, JobOut
from ..scope import caller, own_collection
from ..state import Services

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
P = Permission


def visible_job(services: Services, actor: Actor, job_id: int) -> Job:
    try:
        job = services.jobs.get(job_id)
    except NotFound:
        job = None
    if job is None or job.organisation_id != actor.organisation_id:
        raise NotFound(f"no job with id {job_id}")
    return job


def allowed_path(services: Services, raw: str) -> Path:
    """A server path the operator allowed; anything else is refused."""
    roots = [root.resolve() for root in services.settings.api.allowed_roots]
    if not roots:
        raise PermissionDenied(
            "ingest from server folders is off; upload files instead, or have the operator "
            "set FACESEARCH_API__ALLOWED_ROOTS"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise PermissionDenied(f"{raw!r} is not an absolute path")
    # realpath, not Path.resolve: that raises on a link loop.
    resolved = Path(os.path.realpath(path))
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PermissionDenied(f"{raw!r} is outside the folders allowed for ingest")
    if not os.path.lexists(resolved):
        raise NotFound(f"{raw!r} does not exist")
    # A link loop, a dangling link or a FIFO is taken, and refused in the job's errors.
    return resolved


@router.get("", response_model=list[JobOut])
def list_jobs(
    services: ServicesDep, limit: int = 50, actor: Actor = require(P.JOBS_READ)
) -> list[JobOut]:
    """Ingest jobs of one's organisation, newest first."""
    return [
        JobOut.of(j) for j in services.jobs.list(actor.organisation_id, min(max(limit, 1), 500))
    ]


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
def start_job(body: JobCreate, services: ServicesDep, actor: Actor = require(P.INGEST)) -> JobOut:
    """Ingest server-side folders, image files or CSV/JSONL manifests (under
    the allowed roots) into a collection, in the background."""
    collection = own_collection(services.catalog, actor, body.collection)
    paths = [allowed_path(services, raw) for raw in body.paths]
    job = services.runner.submit(collection.id, "paths", paths, actor.user_id)
    actions.ingest_started(caller(services, actor), collection.name, [str(p) for p in paths],
                           job.id)  # fmt: skip
    return JobOut.of(job)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, services: ServicesDep, actor: Actor = require(P.JOBS_READ)) -> JobOut:
    """A job's status and progress: done of total files, faces, errors, rate."""
    return JobOut.of(visible_job(services, actor, job_id))


@router.delete("/{job_id}", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
def cancel_job(job_id: int, services: ServicesDep, actor: Actor = require(P.INGEST)) -> JobOut:
    """Cancel a job; a running one stops after its current batch, keeping what it stored."""
    visible_job(services, actor, job_id)
    return JobOut.of(services.runner.cancel(job_id))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    job_id: int, request: Request, services: ServicesDep, actor: Actor = require(P.JOBS_READ)
) -> StreamingResponse:
    """Server-Sent Events: a `progress` event (the job as JSON) whenever it
    changes, then `end` once it has finished, failed or been cancelled."""
    visible_job(services, actor, job_id)

    async def stream():
        last = None
        quiet = 0.0
        while True:
            job = services.jobs.get(job_id)
            data = JobOut.of(job).model_dump_json()
            if data != last:
                yield f"event: progress\ndata: {data}\n\n"
                last, quiet = data, 0.0
            if not job.active:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.5)
            quiet += 0.5
            if quiet >= 15:  # keeps proxies from closing an idle stream
                yield ": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(
        stream(), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip
