"""`facesearch models …`: fetch, verify and list model weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import Settings
from ..errors import FacesearchError
from ..models.registry import get as get_model
from .output import JsonOpt, err, out, print_json, table

models_app = typer.Typer(help="Fetch, verify and list model weights.", no_args_is_help=True)


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
    from ..models.cache import ModelCache

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
    from ..models.cache import ModelCache

    rows = [
        {
            "name": s.spec.name, "task": s.spec.task, "version": s.spec.version,
            "licence": s.spec.licence, "installed": s.installed, "sha256": s.spec.runtime_sha256,
            "path": str(s.path), "input": s.spec.input_format,
        }
        for s in ModelCache(ctx.obj.models_dir).status()
    ]  # fmt: skip
    if as_json:
        print_json(rows)
    else:
        out.print(table([{k: r[k] for k in ("name", "task", "version", "licence", "installed",
                                              "path")} for r in rows]))  # fmt: skip
