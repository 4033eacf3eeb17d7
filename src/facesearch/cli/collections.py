"""`facesearch collections …`: declare and list collections."""

from __future__ import annotations

from typing import Annotated

import typer

from ..engine import Engine
from .output import JsonOpt, out, print_json, table

collections_app = typer.Typer(help="Declare and list collections.", no_args_is_help=True)


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
    with Engine(ctx.obj) as engine:
        collection = engine.create_collection(name, source, legal_basis, retention_days)
    out.print(f"created collection [bold]{collection.name}[/]")


@collections_app.command("list")
def collections_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List collections with their declarations and counts."""
    with Engine(ctx.obj) as engine:
        rows = engine.collections()
    print_json(rows) if as_json else out.print(table(rows))
