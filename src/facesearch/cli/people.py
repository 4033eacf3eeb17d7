"""`facesearch people …`: persons found by clustering, and the human decisions on them.

The command line has no login: it acts as `cli:<OS user>` on one organisation
(`--organisation`, 'default' unless given). Every change is audited and undoable
(`facesearch people undo OPERATION`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..engine import Engine
from ..governance.actions import Caller, governed, search_person
from ..governance.audit import Who
from ..governance.purpose import bind
from ..people.actions import PersonActions
from ..people.search import HOW
from ..store.people import PeopleStore, Person
from .output import JsonOpt, out, print_json

people_app = typer.Typer(
    help="Persons: faces grouped by clustering; name, merge, split, hide, undo.",
    no_args_is_help=True,
)
OrgOpt = Annotated[str, typer.Option("--organisation", help="The organisation's name.")]
VersionOpt = Annotated[
    int | None,
    typer.Option("--version", help="Refuse if the person changed since this version."),
]


def _open(ctx: typer.Context, organisation: str) -> tuple[Engine, PersonActions, Who]:
    engine = Engine(ctx.obj)
    try:
        org = PeopleStore(engine.catalog).organisation_named(organisation)
        audit, _ = governed(engine)
    except BaseException:
        engine.close()
        raise
    return engine, PersonActions(engine.catalog, audit), Who.cli(org)


def _show_person(person: Person, as_json: bool, operation: int | None = None) -> None:
    if as_json:
        print_json(person.to_json() | ({"operation": operation} if operation else {}))
        return
    name = person.name or "(unnamed)"
    hidden = ", hidden" if person.hidden else ""
    done = (
        f" (operation {operation}; undo: facesearch people undo {operation})" if operation else ""
    )
    out.print(
        f"person {person.id}: {name}, {person.faces} faces{hidden}, version {person.version}{done}"
    )


@people_app.command("list")
def people_list(
    ctx: typer.Context,
    organisation: OrgOpt = "default",
    hidden: Annotated[bool, typer.Option("--hidden", help="Include hidden persons.")] = False,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Persons of the organisation, most faces first."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        persons = actions.store.persons(int(who.organisation_id or 0), hidden, limit)
    if as_json:
        print_json([p.to_json() for p in persons])
        return
    table = Table(title=f"{len(persons)} persons")
    for column in ("id", "name", "faces", "hidden", "cover face", "updated"):
        table.add_column(column)
    for p in persons:
        table.add_row(
            str(p.id),
            p.name or "",
            str(p.faces),
            "yes" if p.hidden else "",
            str(p.cover_face_id or ""),
            p.updated_at,
        )
    out.print(table)


@people_app.command("show")
def people_show(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    organisation: OrgOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """A person with every appearance (oldest first) and the operations on it."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        org = int(who.organisation_id or 0)
        found = actions.store.person(org, person)
        faces = actions.store.appearances(org, person)
        history = actions.store.operations(org, person)
    if as_json:
        print_json(found.to_json() | {"appearances": faces, "operations": history})
        return
    _show_person(found, False)
    table = Table(title=f"{len(faces)} appearances")
    for column in ("face", "image", "collection", "date", "quality", "pinned", "path"):
        table.add_column(column)
    for f in faces:
        table.add_row(
            str(f["face_id"]),
            str(f["image_id"]),
            f["collection"],
            (f["captured_at"] or f["added_at"] or "")[:10],
            f"{f['quality']:.2f}",
            "yes" if f["pinned"] else "",
            f["source_url"] or f["path"],
        )
    out.print(table)
    for op in history:
        undone = f" (undone {op['undone_at']})" if op["undone_at"] else ""
        out.print(f"operation {op['id']}: {op['kind']} by {op['actor']} at {op['at']}{undone}")


@people_app.command("name")
def people_name(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    name: Annotated[str, typer.Argument(help="The name; an empty one clears it.")],
    organisation: OrgOpt = "default",
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Name (or rename) a person. The name is encrypted at rest."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        found, op = actions.name(who, person, name, expected=version)
    _show_person(found, as_json, op)


@people_app.command("hide")
def people_hide(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    show: Annotated[bool, typer.Option("--show", help="Show a hidden person again.")] = False,
    organisation: OrgOpt = "default",
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hide a person from the People list (or --show it again)."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        found, op = actions.hide(who, person, not show, expected=version)
    _show_person(found, as_json, op)


@people_app.command("merge")
def people_merge(
    ctx: typer.Context,
    source: Annotated[int, typer.Argument(help="The person whose faces move.")],
    target: Annotated[int, typer.Argument(help="The person they join.")],
    organisation: OrgOpt = "default",
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge SOURCE into TARGET: one person from then on (undoable)."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        found, op = actions.merge(who, source, target, expected=version)
    _show_person(found, as_json, op)


@people_app.command("split")
def people_split(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    faces: Annotated[list[int], typer.Argument(help="Face ids to split out.")],
    into: Annotated[
        int | None, typer.Option(help="An existing person to move them to (default: a new one).")
    ] = None,
    organisation: OrgOpt = "default",
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move FACES out of PERSON, into a new person or --into another."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        found, op = actions.split(who, person, faces, into, expected=version)
    _show_person(found, as_json, op)


@people_app.command("not-this")
def people_not_this(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    faces: Annotated[list[int], typer.Argument(help="Face ids that are not this person.")],
    organisation: OrgOpt = "default",
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Not this person: FACES leave PERSON and clustering never puts them back."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        found, op = actions.reject(who, person, faces, expected=version)
    _show_person(found, as_json, op)


@people_app.command("undo")
def people_undo(
    ctx: typer.Context,
    operation: Annotated[int, typer.Argument(help="Operation id (people show lists them).")],
    organisation: OrgOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Undo a person operation (the latest on each person it touched)."""
    engine, actions, who = _open(ctx, organisation)
    with engine:
        done = actions.undo(who, operation)
    if as_json:
        print_json(done)
    else:
        out.print(
            f"undid operation {done['operation']} ({done['kind']}) on persons "
            f"{', '.join(map(str, done['persons']))}"
        )


@people_app.command("recluster")
def people_recluster(
    ctx: typer.Context,
    organisation: OrgOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Cluster all of the organisation's faces again (after a model change); keeps every
    human decision. Stopped, it resumes from its checkpoint when run again."""
    engine, actions, who = _open(ctx, organisation)
    with engine:

        def progress(stage: str, done: int, total: int) -> None:
            if not as_json:
                out.print(f"{stage}: {done}/{total}")

        result = actions.recluster(who, lambda org: engine.people().recluster(org, progress))
    if as_json:
        print_json(result)
    else:
        out.print(
            f"{result['faces']} faces: {result['assigned']} assigned, {result['created']} "
            f"persons created, {result['removed']} removed"
        )


@people_app.command("search")
def people_search(
    ctx: typer.Context,
    person: Annotated[int, typer.Argument(help="Person id.")],
    top: Annotated[int, typer.Option("--top", "-k")] = 20,
    how: Annotated[str, typer.Option(help=f"Ranking: {' or '.join(HOW)}.")] = "max",
    purpose: Annotated[
        str | None, typer.Option(help="Why: one of the configured purposes (required).")
    ] = None,
    case: Annotated[str | None, typer.Option(help="The case reference (required).")] = None,
    authorisation: Annotated[str | None, typer.Option(help="The authorisation reference.")] = None,
    organisation: OrgOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Stored faces most like all of PERSON's faces, for a stated purpose and case."""
    bound = bind(ctx.obj.governance, purpose, case, authorisation)
    engine, people, who = _open(ctx, organisation)
    with engine:
        caller = Caller(engine.settings, engine, people.audit, who)
        hits, _, _ = search_person(caller, bound, person, top, how)
    if as_json:
        print_json(
            [
                {
                    "rank": h.rank,
                    "score": round(h.score, 4),
                    "face_id": h.face_id,
                    "image_id": h.image_id,
                    "collection": h.collection,
                    "path": h.path,
                    "band": h.band,
                }
                for h in hits
            ]
        )
        return
    table = Table(title=f"{len(hits)} faces like person {person}")
    for column in ("#", "score", "lead", "face", "collection", "image or source"):
        table.add_column(column)
    for h in hits:
        table.add_row(
            str(h.rank),
            f"{h.score:.3f}",
            h.band or "",
            str(h.face_id),
            h.collection,
            h.source_url or h.path,
        )
    out.print(table)
