"""`facesearch audit …`, `rights …` and `retention …`: the log, data-subject rights, purges.

The command line has no login: its actor is the OS user, recorded as `cli:<name>`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..engine import Engine
from ..errors import FacesearchError
from ..governance import actions, oversight
from ..governance.actions import Caller, governed
from ..governance.audit import Who
from ..governance.rights import (
    access_report,
    erase,
    persons_held,
    purge_expired_pending,
    purge_retention,
)
from .output import JsonOpt, out, print_json

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
rights_app = typer.Typer(
    help="Data-subject rights: access reports and erasure.", no_args_is_help=True
)
retention_app = typer.Typer(help="Retention of stored photos.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH printed by an earlier verify; catches removed newest entries."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the whole hash chain and signatures; name the first broken entry."""
    expected = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise FacesearchError(
                "--anchor must be SEQ:HASH as printed by 'facesearch audit verify'"
            )
        expected = (int(seq), digest)
    with Engine(ctx.obj) as engine:
        result = governed(engine)[0].verify(expected)
    if as_json:
        print_json(result.__dict__)
    else:
        out.print(("[green]" if result.ok else "[red]") + result.message())
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option(help="search, view, erase, ingest, login…")] = None,
    case: Annotated[str | None, typer.Option(help="Only entries of this case.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time, exclusive.")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write CSV here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit entries, newest first; --csv exports them (the export is logged)."""
    with Engine(ctx.obj) as engine:
        if csv_file is not None:
            count = actions.audit_export(
                Caller.command_line(engine), csv_file.write_text, action,
                actor, case, since, until, limit,
            )  # fmt: skip
            out.print(f"wrote {count} entries to {csv_file}")
            return
        rows = governed(engine)[0].store.query(None, action, actor, case, since, until, limit)
    if as_json:
        print_json([{**r.__dict__, "details": json.loads(r.details)} for r in rows])
        return
    table = Table(title=f"{len(rows)} audit entries")
    for column in ("seq", "at", "actor", "origin", "action", "details"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r.seq), r.at, r.actor, r.origin, r.action, r.details[:120])
    out.print(table)


@audit_app.command("report")
def audit_report(
    ctx: typer.Context,
    organisation: Annotated[int | None, typer.Option(help="Organisation id.")] = None,
    since: Annotated[str | None, typer.Option(help="Start of the period (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="End of the period, exclusive (ISO).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Transparency report for a period, with usage and anomaly flags."""
    with Engine(ctx.obj) as engine:
        audit = governed(engine)[0]
        rows = audit.store.query(organisation, None, None, None, since, until, 10**9)
    report = {
        "period": {"since": since, "until": until, "organisation_id": organisation},
        "transparency": oversight.transparency(rows),
        "usage": oversight.usage(rows),
        "anomalies": oversight.anomalies(rows, ctx.obj.governance),
    }
    print_json(report) if as_json else out.print_json(json.dumps(report, default=str))


@rights_app.command("access")
def rights_access(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument(help="The person's photo.", exists=True, dir_okay=False)],
    reference: Annotated[str, typer.Option(help="The access request's reference.")],
    received: Annotated[str | None, typer.Option(help="When the request came (ISO).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every face of the person in PHOTO the system holds, with the searches that returned it."""
    with Engine(ctx.obj) as engine:
        held, seq = access_report(
            engine, governed(engine)[0], Who.cli(), photo.read_bytes(), None, reference,
            received, ctx.obj.governance.access_threshold,
        )  # fmt: skip
        persons = persons_held(engine, None, held)
    rows = [h.__dict__ for h in held]
    if as_json:
        print_json({"reference": reference, "search_seq": seq, "faces": rows, "persons": persons})
        return
    out.print(f"{len(rows)} faces held for request {reference} (logged as audit entry {seq})")
    for h in held:
        where = h.source_url or h.path
        at = f" at {h.video['time']} (track {h.video['track_id']})" if h.video else ""
        out.print(
            f"face {h.face_id} ({h.score:.3f}) in {h.collection}: {where}{at}, "
            f"{h.captured_at or 'no date'}; returned by {len(h.searches)} searches"
        )
    for p in persons:
        faces = ", ".join(str(f["face_id"]) for f in p["faces"])
        out.print(f"grouped as person {p['id']} ({p['name'] or 'unnamed'}), faces {faces}")


@rights_app.command("erase")
def rights_erase(
    ctx: typer.Context,
    reference: Annotated[str, typer.Option(help="The erasure request's reference.")],
    face_ids: Annotated[
        list[int] | None, typer.Argument(help="Face ids to erase (from rights access).")
    ] = None,
    track: Annotated[
        list[int] | None, typer.Option(help="A video track to erase, every face of it.")
    ] = None,
    video: Annotated[
        list[int] | None,
        typer.Option(help="A whole video (its image id) to erase; not block-listed."),
    ] = None,
    person: Annotated[
        list[int] | None, typer.Option(help="A person (facesearch people) to erase, all faces.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase faces (or video tracks, whole videos, persons) from catalog and index and block
    the person from future imports."""
    if not (face_ids or track or video or person):
        raise FacesearchError("name at least one face id, --track, --video or --person to erase")
    with Engine(ctx.obj) as engine:
        audit, blocklist = governed(engine)
        event = erase(engine, audit, blocklist, Who.cli(), face_ids or [], reference,
                      ctx.obj.uploads_dir, track or [], video or [], person or [])  # fmt: skip
    summary = {"erased": event.face_ids, "images_deleted": event.images_deleted,
               "blocklisted": event.blocklisted}  # fmt: skip
    print_json(summary) if as_json else out.print(
        f"erased {len(event.face_ids)} faces ({event.images_deleted} images left without faces "
        f"deleted); {event.blocklisted} embeddings added to the block-list"
    )


@retention_app.command("purge")
def retention_purge(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Delete photos older than their collection's retention period."""
    with Engine(ctx.obj) as engine:
        audit = governed(engine)[0]
        purged = purge_retention(engine, audit, Who.cli(), ctx.obj.uploads_dir)
        expired = purge_expired_pending(
            audit, Who.cli(), ctx.obj.governance.pending_authorisation_hours
        )
    if expired and not as_json:
        out.print(f"results of {len(expired)} searches never authorised in time purged")
    rows = [{k: v for k, v in p.items() if k != "paths"} for p in purged]
    if as_json:
        print_json(rows)
    elif not rows:
        out.print("nothing has outlived its retention")
    else:
        for r in rows:
            out.print(f"{r['collection']}: {r['images']} images, {r['faces']} faces purged")
