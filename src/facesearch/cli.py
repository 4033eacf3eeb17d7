"""The `facesearch` command: parses arguments, calls the Engine, prints.

Every command takes --json where a script may want to read its output.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import __version__, failures
from .cli_eval import eval_app
from .cli_governance import governed, hash_of
from .cli_governance import register as register_governance_commands
from .cli_people import register as register_people_commands
from .cli_service import register as register_service_commands
from .config import Settings
from .diskfull import from_os_error
from .engine import Engine, SearchResult
from .errors import FacesearchError
from .governance.audit import ImageViewed, IngestStarted, SearchPerformed, Who
from .governance.purpose import bind
from .index_cli import index_app
from .ingest import IngestReport, ingest_ended
from .models.registry import get as get_model
from .sheet import contact_sheet
from .store.people import PeopleStore

LEAD_NOTICE = "Matches are leads for a person to check, never an identification."

app = typer.Typer(
    help="Search declared photo collections for the faces in a photo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Fetch, verify and list model weights.", no_args_is_help=True)
collections_app = typer.Typer(help="Declare and list collections.", no_args_is_help=True)
images_app = typer.Typer(help="List stored images.", no_args_is_help=True)
faces_app = typer.Typer(help="List stored faces and export thumbnails.", no_args_is_help=True)
errors_app = typer.Typer(
    help="Files that could not be ingested, with reasons.", no_args_is_help=True
)
runs_app = typer.Typer(help="Ingest runs and how they ended.", no_args_is_help=True)
for sub, name in (
    (models_app, "models"), (collections_app, "collections"), (images_app, "images"),
    (faces_app, "faces"), (errors_app, "errors"), (runs_app, "runs"),
):  # fmt: skip
    app.add_typer(sub, name=name)
register_service_commands(app)
register_governance_commands(app)
register_people_commands(app)
app.add_typer(eval_app, name="eval")
app.add_typer(index_app, name="index")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of the catalog [env FACESEARCH_DATA_DIR; XDG data home]."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of cached models [env FACESEARCH_CACHE_DIR; XDG cache]."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes for ingest [default: all cores].")
    ] = None,
) -> None:
    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if cache_dir is not None:
        overrides["cache_dir"] = cache_dir
    if workers is not None:
        overrides["workers"] = workers
    try:
        ctx.obj = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FacesearchError(f"invalid settings: {problems}") from None
    failures.remember(ctx.obj.data_dir)
    from .models import declared

    declared.install(ctx.obj)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def _engine(ctx: typer.Context) -> Engine:
    return Engine(ctx.obj)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _table(rows: list[dict], title: str | None = None) -> Table:
    table = Table(title=title)
    for key in rows[0] if rows else []:
        table.add_column(key.replace("_", " "))
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table


# models


@models_app.command("fetch")
def models_fetch(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Models to fetch [default: the configured detector and recogniser]."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Import a copy of the file made elsewhere.")
    ] = None,
) -> None:
    """Download, verify (sha256, size) and cache model weights.

    Example: facesearch models fetch
    """
    settings: Settings = ctx.obj
    from .models.cache import ModelCache

    cache = ModelCache(settings.models_dir, report=lambda m: err.print(f"[dim]{m}[/]"))
    if from_file is not None:
        if not names or len(names) != 1:
            raise FacesearchError("--from needs exactly one model name")
        paths = [cache.fetch(get_model(names[0]), from_file=from_file)]
    else:
        wanted = names or [settings.detector, settings.embedder]
        # A recogniser's companions (dlib's shape predictor) come with it.
        wanted += [r for n in list(wanted) for r in get_model(n).requires if r not in wanted]
        paths = [cache.ensure(get_model(n)) for n in wanted]
    for path in paths:
        out.print(f"[green]ok[/] {path}")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show known models, their licences and whether they are installed."""
    from .models.cache import ModelCache

    rows = [
        {
            "name": s.spec.name, "task": s.spec.task, "version": s.spec.version,
            "licence": s.spec.licence, "installed": s.installed, "sha256": s.spec.runtime_sha256,
            "path": str(s.path), "input": s.spec.input_format,
        }
        for s in ModelCache(ctx.obj.models_dir).status()
    ]  # fmt: skip
    if as_json:
        _print_json(rows)
    else:
        out.print(_table([{k: r[k] for k in ("name", "task", "version", "licence", "installed",
                                              "path")} for r in rows]))  # fmt: skip


# collections


@collections_app.command("create")
def collections_create(
    ctx: typer.Context,
    name: str,
    source: Annotated[str, typer.Option(help="Where the photos come from.")],
    legal_basis: Annotated[str, typer.Option(help="The legal basis for processing them.")],
    retention_days: Annotated[int | None, typer.Option(help="Keep for this many days.")] = None,
) -> None:
    """Declare a collection; nothing is ingested outside one.

    Example: facesearch collections create press --source "Agency archive 2024"
    --legal-basis "GDPR art. 9(2)(g), contract 12/2024" --retention-days 365
    """
    with _engine(ctx) as engine:
        collection = engine.create_collection(name, source, legal_basis, retention_days)
    out.print(f"created collection [bold]{collection.name}[/]")


@collections_app.command("list")
def collections_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List collections with their declarations and counts."""
    with _engine(ctx) as engine:
        rows = engine.catalog.collections()
    _print_json(rows) if as_json else out.print(_table(rows))


# ingest


@app.command()
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
    with _engine(ctx) as engine:
        audit, blocklist = governed(engine)
        who = Who.cli(engine.catalog.collection(collection).organisation_id)
        audit.record(who, IngestStarted(collection, [str(p) for p in paths]))
        seen: list[IngestReport] = []
        try:
            report = _ingest_with_progress(engine, paths, collection, blocklist.screen, seen)
        except BaseException as exc:
            # How it ended is recorded however it ended; a failure to record that (a full
            # disk) does not hide the error that stopped the ingest.
            with contextlib.suppress(FacesearchError):
                audit.record(who, ingest_ended(collection, seen[0] if seen else None, exc))
            if isinstance(exc, KeyboardInterrupt):
                err.print("[yellow]interrupted: what was stored is kept; run again to continue[/]")
                raise typer.Exit(130) from None
            raise
        audit.record(who, ingest_ended(collection, report))
    summary = {
        "run_id": report.run_id, "status": report.status, "files": report.total,
        "images_added": report.images, "faces_added": report.faces,
        "duplicates_skipped": report.duplicates, "errors": report.errors,
        "blocked_faces": report.blocked, "seconds": round(report.seconds, 2),
        "images_per_second": round(report.images_per_second, 2),
    }  # fmt: skip
    if ctx.obj.ray.address:
        summary |= {
            "ray_nodes": report.ray_nodes, "ray_devices": report.ray_devices,
            "resubmitted_batches": report.resubmitted,
        }  # fmt: skip
    if as_json:
        _print_json(summary)
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
        TextColumn("{task.fields[errors]} errors"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("ingest", total=None, rate=0.0, faces=0, errors=0)

        def update(report: IngestReport) -> None:
            if seen is not None and not seen:
                seen.append(report)
            bar.update(
                task, total=report.total, completed=report.done,
                rate=report.images_per_second, faces=report.faces, errors=report.errors,
            )  # fmt: skip

        return engine.ingest(paths, collection, update, screen)


@app.command()
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
    from .reembed import reembed as run_reembed

    columns = (TextColumn("[bold]re-embed"), BarColumn(), MofNCompleteColumn(),
               TextColumn("images"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    with _engine(ctx) as engine, Progress(*columns, console=err) as bar:
        task = bar.add_task("reembed", total=None)
        target = engine.catalog.collection(collection)
        try:
            report = run_reembed(
                ctx.obj, engine.catalog, target, model, source_model,
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
        _print_json(summary)
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


# search


@app.command()
def search(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument(help="The probe photo.", exists=True, dir_okay=False)],
    top: Annotated[int, typer.Option("--top", "-k", help="How many matches.")] = 10,
    face: Annotated[
        int | None, typer.Option(help="Which probe face (0-based, largest first).")
    ] = None,
    collection: Annotated[
        list[str] | None, typer.Option(help="Search only these collections.")
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(help="Also write a JPEG contact sheet of the matches.")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="Why: one of the configured purposes (required).")
    ] = None,
    case: Annotated[str | None, typer.Option(help="The case reference (required).")] = None,
    authorisation: Annotated[
        str | None, typer.Option(help="The authorisation reference, where one is given.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the stored faces most similar to a face in PHOTO, for a stated purpose and case.

    Example: facesearch search probe.jpg --purpose "missing person" --case MP-2024-17 --json
    """
    bound = bind(ctx.obj.governance, purpose, case, authorisation)
    data = photo.read_bytes()
    with _engine(ctx) as engine:
        audit, _ = governed(engine)
        result = engine.search(data, top, face, collection or None)
        persons = PeopleStore(engine.catalog).persons_of_faces(
            None, [h.face_id for h in result.hits]
        )
        names = collection or [c["name"] for c in engine.catalog.collections()]
        audit.record(Who.cli(), SearchPerformed(
            bound.purpose, bound.case, bound.authorisation, hash_of(data), None, names,
            [h.face_id for h in result.hits], [round(h.score, 4) for h in result.hits],
            result.searched_faces, authorisation_pending=bound.pending,
        ))  # fmt: skip
    if sheet is not None:
        sheet.write_bytes(contact_sheet(result.probe_faces[result.face_index], result.hits))
    if as_json:
        _print_json(search_json(result, persons))
        return
    _print_search(result, persons)
    if sheet is not None:
        out.print(f"contact sheet: {sheet}")


def search_json(result: SearchResult, persons: dict[int, dict] | None = None) -> dict:
    """`persons`: face id → its person ({"id", "name", "faces"}), shown with each match."""
    persons = persons or {}
    return {
        "model": result.model,
        "face": result.face_index,
        "probe_faces": [
            {
                "index": n,
                "box": _box(f.detection.box),
                "score": round(f.detection.score, 4),
                "quality": f.quality,
            }
            for n, f in enumerate(result.probe_faces)
        ],
        "searched_faces": result.searched_faces,
        "notice": LEAD_NOTICE,
        "matches": [
            {
                "rank": h.rank,
                "score": round(h.score, 4),
                "band": h.band,
                "band_gallery_size": h.band_gallery_size,
                "estimated_fmr": h.estimated_fmr,
                "quality": h.quality,
                "face_id": h.face_id,
                "image_id": h.image_id,
                "collection": h.collection,
                "path": h.path,
                "source_url": h.source_url,
                "captured_at": h.captured_at,
                "box": _box(h.box),
                "thumbnail": "data:image/jpeg;base64," + base64.b64encode(h.thumbnail).decode(),
                "person": _person_json(persons.get(h.face_id)),
            }
            for h in result.hits
        ],
    }


def _person_json(person: dict | None) -> dict | None:
    if person is None:
        return None
    return {"id": person["id"], "name": person["name"], "faces": person["faces"]}


def _person_cell(person: dict | None) -> str:
    if person is None:
        return ""
    label = person["name"] or f"person {person['id']}"
    return f"{label} ({person['faces']})"


def _box(box: tuple[float, float, float, float]) -> dict[str, int]:
    return dict(zip(("x", "y", "w", "h"), (round(v) for v in box), strict=True))


def _print_search(result: SearchResult, persons: dict[int, dict] | None = None) -> None:
    persons = persons or {}
    if len(result.probe_faces) > 1:
        listing = ", ".join(
            f"{n}: {_box(f.detection.box)}" for n, f in enumerate(result.probe_faces)
        )
        out.print(f"{len(result.probe_faces)} faces in the probe ({listing}); "
                  f"searching face {result.face_index}, pick another with --face")  # fmt: skip
    table = Table(
        title=f"{len(result.hits)} matches among {result.searched_faces} faces",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )  # fmt: skip
    dated = any(h.captured_at for h in result.hits)
    # The image's path or source is what a person acts on: it gets the room and
    # folds rather than being cut; face boxes are in --json and on the web.
    for column in ("#", "score", "lead", "FMR", "quality", "collection"):
        table.add_column(column)
    table.add_column("image or source", overflow="fold", ratio=1)
    if dated:
        table.add_column("captured")
    table.add_column("face")
    table.add_column("person (appearances)")
    for h in result.hits:
        fmr = f"{h.estimated_fmr:.0e}" if h.estimated_fmr is not None else ""
        quality = f"{h.quality:.2f}" if h.quality is not None else ""
        cells = [str(h.rank), f"{h.score:.3f}", h.band or "", fmr, quality, h.collection,
                 h.source_url or h.path]  # fmt: skip
        if dated:
            cells.append((h.captured_at or "")[:10])
        table.add_row(*cells, str(h.face_id), _person_cell(persons.get(h.face_id)))
    out.print(table)
    calibrated = next((h.band_gallery_size for h in result.hits if h.band_gallery_size), None)
    if calibrated:
        weaker = " (a larger gallery: a band is weaker evidence here)" if (
            result.searched_faces > calibrated
        ) else ""  # fmt: skip
        out.print(f"[dim]Bands calibrated at a gallery of {calibrated:,} faces; this search "
                  f"covered {result.searched_faces:,}{weaker}.[/]")  # fmt: skip
    out.print(f"[dim]{LEAD_NOTICE} Thumbnails: facesearch faces thumbnail FACE_ID -o FILE[/]")


# catalog views


@app.command()
def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Counts of collections, images, faces and errors."""
    with _engine(ctx) as engine:
        counts = engine.stats()
    _print_json(counts) if as_json else out.print(_table([counts]))


@images_app.command("list")
def images_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored images."""
    with _engine(ctx) as engine:
        chosen = engine.catalog.collection(collection) if collection else None
        rows = engine.catalog.images(chosen, limit)
    _print_json(rows) if as_json else out.print(_table(rows))


@faces_app.command("list")
def faces_list(
    ctx: typer.Context,
    image: Annotated[int | None, typer.Option(help="Only the faces of this image id.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored faces."""
    with _engine(ctx) as engine:
        rows = engine.catalog.face_list(image, limit)
    _print_json(rows) if as_json else out.print(_table(rows))


@faces_app.command("thumbnail")
def faces_thumbnail(
    ctx: typer.Context,
    face_id: int,
    output: Annotated[Path, typer.Option("--output", "-o", help="JPEG file to write.")],
) -> None:
    """Write a face's thumbnail to a JPEG file."""
    with _engine(ctx) as engine:
        rows = engine.catalog.faces([face_id])
        if face_id not in rows:
            raise FacesearchError(f"no face with id {face_id}")
        audit, _ = governed(engine)
        audit.record(Who.cli(), ImageViewed(rows[face_id].image_id, face_id, "thumbnail export"))
    output.write_bytes(rows[face_id].thumbnail)
    out.print(f"wrote {output}")


@errors_app.command("list")
def errors_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List files that could not be ingested and why."""
    with _engine(ctx) as engine:
        chosen = engine.catalog.collection(collection) if collection else None
        rows = engine.catalog.errors(chosen, limit)
    _print_json(rows) if as_json else out.print(_table(rows))


@runs_app.command("list")
def runs_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option()] = 20, as_json: JsonOpt = False
) -> None:
    """List ingest runs, newest first."""
    with _engine(ctx) as engine:
        rows = engine.catalog.runs(limit)
    _print_json(rows) if as_json else out.print(_table(rows))


def run() -> None:
    """Console entry point: user errors print one clear line, not a traceback; so do
    bugs, whose traceback goes to the log (failures.py)."""
    try:
        app()
    except FacesearchError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        # A full disk where no store turned it into a StorageError (an output file).
        clear = from_os_error(exc, Path(exc.filename or "a file"))
        if clear is None:
            _fail(failures.report_unexpected(exc), 1)
        _fail(str(clear), 2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # a bug
        _fail(failures.report_unexpected(exc), 1)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)
