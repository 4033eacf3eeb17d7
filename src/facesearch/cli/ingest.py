"""`facesearch ingest` and `facesearch reembed`: faces into the catalog, with progress."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..config import Settings
from ..engine import Engine
from ..errors import FacesearchError
from ..governance import actions
from ..ingest import IngestReport
from .output import JsonOpt, err, out, print_json


def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Folders, image files or CSV/JSONL manifests.")
    ],
    collection: Annotated[str, typer.Option(help="The declared collection to add to.")],
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Analyse on the Ray cluster whose head is ADDRESS (host:port, or auto) "
            "[env FACESEARCH_RAY__ADDRESS].",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Detect, embed and store every face in the given images.

    Folders are walked recursively; a manifest (CSV or JSONL with columns path,
    source_url, captured_at, caption) adds metadata. Run it again after an
    interruption and it continues where it stopped. With --ray the images are
    analysed on a Ray cluster and stored from here.

    Example: facesearch ingest ~/archive/2024 --collection press
    """
    if ray is not None:
        settings: Settings = ctx.obj
        ctx.obj = settings.model_copy(
            update={"ray": settings.ray.model_copy(update={"address": ray})}
        )
    with Engine(ctx.obj) as engine:
        target = actions.collection(actions.Caller.command_line(engine), collection)
        caller = actions.Caller.command_line(engine, target.organisation_id)
        blocklist = actions.governed(engine)[1]
        actions.ingest_started(caller, collection, [str(p) for p in paths])
        seen: list[IngestReport] = []
        try:
            report = _ingest_with_progress(engine, paths, collection, blocklist.screen, seen)
        except BaseException as exc:
            # How it ended is recorded however it ended; a failure to record that (a full
            # disk) does not hide the error that stopped the ingest.
            with contextlib.suppress(FacesearchError):
                actions.ingest_ended(caller, collection, seen[0] if seen else None, exc)
            if isinstance(exc, KeyboardInterrupt):
                err.print("[yellow]interrupted: what was stored is kept; run again to continue[/]")
                raise typer.Exit(130) from None
            raise
        actions.ingest_ended(caller, collection, report)
    summary = {
        "run_id": report.run_id, "status": report.status, "files": report.total,
        "images_added": report.images, "faces_added": report.faces,
        "duplicates_skipped": report.duplicates, "errors": report.errors,
        "blocked_faces": report.blocked, "seconds": round(report.seconds, 2),
        "images_per_second": round(report.images_per_second, 2),
    }  # fmt: skip
    if report.segments:
        summary |= {
            "video_seconds": round(report.video_seconds, 3), "video_segments": report.segments,
            "tracks_added": report.tracks,
        }  # fmt: skip
    if ctx.obj.ray.address:
        summary |= {
            "ray_nodes": report.ray_nodes, "ray_devices": report.ray_devices,
            "resubmitted_batches": report.resubmitted,
        }  # fmt: skip
    if as_json:
        print_json(summary)
    else:
        out.print(
            f"{report.images} images added, {report.faces} faces, "
            f"{report.duplicates} already stored, {report.errors} errors, "
            f"{report.blocked} faces refused by the block-list "
            f"in {report.seconds:.1f} s ({report.images_per_second:.1f} images/s)"
        )
        if report.errors:
            out.print(f"see the reasons with: facesearch errors list --collection {collection}")


def _ingest_with_progress(
    engine: Engine, paths: list[Path], collection: str, screen=None,
    seen: list[IngestReport] | None = None,
) -> IngestReport:  # fmt: skip
    """`seen` receives the run's report as soon as it starts (how an ingest that fails
    or is interrupted is still recorded)."""
    columns = (
        TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} img/s"), TextColumn("{task.fields[faces]} faces"),
        TextColumn("{task.fields[errors]} errors"), TextColumn("{task.fields[video]}"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("ingest", total=None, rate=0.0, faces=0, errors=0, video="")

        def update(report: IngestReport) -> None:
            if seen is not None and not seen:
                seen.append(report)
            bar.update(
                task, total=report.total, completed=report.done,
                rate=report.images_per_second, faces=report.faces, errors=report.errors,
                video=_video_progress(report),
            )  # fmt: skip

        return engine.ingest(paths, collection, update, screen)


def _video_progress(report: IngestReport) -> str:
    """Seconds of video done of those to do, once the run has met a video."""
    if not report.video_seconds_total:
        return ""
    return f"video {report.video_seconds:,.0f}/{report.video_seconds_total:,.0f} s"


def reembed(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option(help="The collection to re-embed.")],
    model: Annotated[str, typer.Option(help="The recogniser to embed its faces with.")],
    source_model: Annotated[
        str | None,
        typer.Option("--from", help="The model whose faces to re-embed [default: configured]."),
    ] = None,
    skip_missing: Annotated[
        bool,
        typer.Option(
            help="Complete even if some image files are gone or changed (their "
            "faces get no embedding of the new model)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-embed a collection's stored faces with another model, from its image files.

    Resumable: run it again after an interruption. Searches with the new model see the
    collection only once every face is re-embedded.

    Example: facesearch reembed --collection press --model my-arcface
    """
    columns = (TextColumn("[bold]re-embed"), BarColumn(), MofNCompleteColumn(),
               TextColumn("images"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with Engine(ctx.obj) as engine, Progress(*columns, console=err) as bar:
        task = bar.add_task("reembed", total=None)
        try:
            report = engine.reembed(
                collection, model, source_model,
                lambda r: bar.update(task, total=r.images_total, completed=r.images_done),
                skip_missing,
            )  # fmt: skip
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: what was re-embedded is kept; run again[/]")
            raise typer.Exit(130) from None
    summary = {
        "collection": report.collection, "from": report.source, "to": report.target,
        "faces": report.faces, "staged": report.staged, "images_this_run": report.images_done,
        "missing_or_changed_files": report.missing, "completed": report.completed,
        "faces_added": report.faces_added, "seconds": round(report.seconds, 2),
    }  # fmt: skip
    if as_json:
        print_json(summary)
    elif report.completed:
        out.print(f"{report.collection}: {report.faces_added} faces of {report.target} added; "
                  f"searches with {model} now cover it")  # fmt: skip
    else:
        out.print(f"{report.collection}: {report.staged} of {report.faces} faces re-embedded; "
                  f"not complete, searches with {model} do not see it yet")  # fmt: skip
    if report.missing:
        err.print(
            f"[yellow]{len(report.missing)} image files are gone or changed, e.g. "
            f"{report.missing[0]}; --skip-missing completes without their faces[/]"
        )
    if not report.completed:
        raise typer.Exit(1)
