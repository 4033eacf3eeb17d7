"""`facesearch index …`: inspect, verify, rebuild and compact the persistent vector index."""

from __future__ import annotations

from typing import Annotated

import typer

from ..engine import Engine
from .output import JsonOpt, show_pairs

index_app = typer.Typer(
    help="Inspect, verify, rebuild and compact the vector index.", no_args_is_help=True
)


@index_app.command("info")
def index_info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the index kind (Flat or the FAISS factory), size, bytes on disk and in RAM.

    Example: facesearch index info --json
    """
    with Engine(ctx.obj) as engine:
        show_pairs(engine.index_info(), as_json)


@index_app.command("verify")
def index_verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Prove that the index holds exactly the catalog's faces and no deleted one.

    Opening the index cuts off any write torn by a crash and catches up with the
    catalog; the check then compares every face id and a sample of vectors.
    Exits with status 1 when they disagree; `facesearch index rebuild` repairs it.

    Example: facesearch index verify
    """
    with Engine(ctx.obj) as engine:
        report = engine.verify_index()
    show_pairs(report, as_json)
    if not report["ok"]:
        raise typer.Exit(1)


@index_app.command("rebuild")
def index_rebuild(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Build the index again from the catalog alone (and retrain it when large).

    Example: facesearch index rebuild
    """
    with Engine(ctx.obj) as engine:
        show_pairs(engine.rebuild_index(), as_json)


@index_app.command("compact")
def index_compact(
    ctx: typer.Context,
    retrain: Annotated[
        bool, typer.Option(help="Also retrain the IVF lists for the present size.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop deleted faces from the files on disk (search already skips them).

    Example: facesearch index compact --retrain
    """
    with Engine(ctx.obj) as engine:
        show_pairs(engine.compact_index(retrain), as_json)
