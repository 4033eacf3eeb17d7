"""Catalog listings: `facesearch stats`, `images list`, `faces …`, `errors list`, `runs list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..engine import Engine
from ..governance import actions
from .output import JsonOpt, out, print_json, table

images_app = typer.Typer(help="List stored images.", no_args_is_help=True)
faces_app = typer.Typer(help="List stored faces and export thumbnails.", no_args_is_help=True)
errors_app = typer.Typer(
    help="Files that could not be ingested, with reasons.", no_args_is_help=True
)
runs_app = typer.Typer(help="Ingest runs and how they ended.", no_args_is_help=True)


def stats(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Counts of collections, images, faces and errors."""
    with Engine(ctx.obj) as engine:
        counts = engine.stats()
    print_json(counts) if as_json else out.print(table([counts]))


@images_app.command("list")
def images_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored images."""
    with Engine(ctx.obj) as engine:
        rows = engine.images(collection, limit)
    print_json(rows) if as_json else out.print(table(rows))


@faces_app.command("list")
def faces_list(
    ctx: typer.Context,
    image: Annotated[int | None, typer.Option(help="Only the faces of this image id.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored faces."""
    with Engine(ctx.obj) as engine:
        rows = engine.face_list(image, limit)
    print_json(rows) if as_json else out.print(table(rows))


@faces_app.command("thumbnail")
def faces_thumbnail(
    ctx: typer.Context,
    face_id: int,
    output: Annotated[Path, typer.Option("--output", "-o", help="JPEG file to write.")],
) -> None:
    """Write a face's thumbnail to a JPEG file."""
    with Engine(ctx.obj) as engine:
        caller = actions.Caller.command_line(engine)
        face = actions.own_face(caller, face_id)
        actions.viewed(caller, face.image_id, face_id, "thumbnail export")
    output.write_bytes(face.thumbnail)
    out.print(f"wrote {output}")


@errors_app.command("list")
def errors_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List files that could not be ingested and why."""
    with Engine(ctx.obj) as engine:
        rows = engine.errors(collection, limit)
    print_json(rows) if as_json else out.print(table(rows))


@runs_app.command("list")
def runs_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option()] = 20, as_json: JsonOpt = False
) -> None:
    """List ingest runs, newest first."""
    with Engine(ctx.obj) as engine:
        rows = engine.runs(limit)
    print_json(rows) if as_json else out.print(table(rows))
