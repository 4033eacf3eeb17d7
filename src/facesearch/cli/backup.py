"""`facesearch backup` and `facesearch restore`: an online copy of the store and its way back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import backup as backups
from ..engine import Engine
from ..errors import FacesearchError
from ..governance import actions
from ..governance.actions import Caller, engine_audit
from .output import JsonOpt, out, show_pairs


def backup(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="A new, empty folder for the backup.")],
    key_to: Annotated[
        Path | None,
        typer.Option(help="Write the key material here (0600), apart from the backup."),
    ] = None,
    no_key: Annotated[
        bool, typer.Option("--no-key", help="Back up no key (you keep the master key yourself).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy the catalog, index files and uploads while ingest and search go on.

    The key material goes to its own owner-only file (--key-to), never into the backup:
    keep the two apart. The backup is audited (one `backup` entry).

    Example: facesearch backup /backups/2026-12-04 --key-to /secure/facesearch-2026-12-04.key
    """
    if key_to is None and not no_key:
        raise FacesearchError(
            "say where the key material goes: --key-to FILE (kept apart from the backup), "
            "or --no-key if you keep the master key yourself"
        )
    settings = ctx.obj
    with Engine(settings) as engine:
        summary = backups.backup(settings, dest, None if no_key else key_to)
        actions.backup_made(Caller.command_line(engine), summary)
    show_pairs(summary, as_json)


def restore(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(help="A folder made by `facesearch backup`.")],
    key_from: Annotated[
        Path | None,
        typer.Option(help="The key file `backup --key-to` wrote (else the configured key)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a backup back into an empty store, then verify its index and audit log.

    Every file is checked against the backup's sha256 first; nothing present is
    overwritten. Exits with status 1 when a check after the restore fails.

    Example: facesearch restore /backups/2026-12-04 --key-from /secure/facesearch-2026-12-04.key
    """
    settings = ctx.obj
    summary = backups.restore(settings, src, key_from)
    with Engine(settings) as engine:
        actions.restored(Caller.command_line(engine), summary)
        index = engine.verify_index()
        audit = engine_audit(engine).verify()
    summary["index_ok"] = index["ok"]
    summary["index_faces"] = index.get("faces_in_index")
    summary["index_problems"] = index["problems"]
    summary["audit_ok"] = audit.ok
    summary["audit_entries"] = audit.entries_checked
    summary["audit"] = audit.message()
    show_pairs(summary, as_json)
    if not (index["ok"] and audit.ok):
        if not as_json:
            out.print("[red]the restored store does not verify[/]")
        raise typer.Exit(1)
