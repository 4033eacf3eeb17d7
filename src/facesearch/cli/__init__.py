"""The `facesearch` command: parses arguments, calls the library, prints.

One module per command group; output.py is what they all print through. Every
command takes --json where a script may want to read its output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape

from .. import __version__, failures
from ..config import Settings
from ..diskfull import from_os_error
from ..errors import FacesearchError
from .backup import backup, restore
from .catalog import errors_app, faces_app, images_app, runs_app, stats
from .collections import collections_app
from .eval import eval_app
from .governance import audit_app, retention_app, rights_app
from .index import index_app
from .ingest import ingest, reembed
from .models import models_app
from .output import err, out
from .people import people_app
from .search import search
from .service import serve, users_app

app = typer.Typer(
    help="Search declared photo collections for the faces in a photo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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
    from ..models import declared

    declared.install(ctx.obj)


def version() -> None:
    """Print the version."""
    out.print(__version__)


# Commands, then groups, in the order `--help` lists them.
for command in (serve, version, ingest, reembed, search, stats, backup, restore):
    app.command()(command)
for sub, name in (
    (models_app, "models"), (collections_app, "collections"), (images_app, "images"),
    (faces_app, "faces"), (errors_app, "errors"), (runs_app, "runs"), (users_app, "users"),
    (audit_app, "audit"), (rights_app, "rights"), (retention_app, "retention"),
    (eval_app, "eval"), (index_app, "index"), (people_app, "people"),
):  # fmt: skip
    app.add_typer(sub, name=name)


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
