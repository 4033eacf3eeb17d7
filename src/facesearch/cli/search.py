"""`facesearch search`: the faces most like a probe's, as a table, JSON or a contact sheet."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from ..engine import Engine, SearchResult
from ..governance import actions
from ..governance.purpose import bind
from ..pipeline.video import time_text
from ..sheet import contact_sheet
from ..store.people import PeopleStore
from .output import JsonOpt, out, print_json

LEAD_NOTICE = "Matches are leads for a person to check, never an identification."


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
    # Refused before anything opens: the command line does not log its refusals (the API does).
    bound = bind(ctx.obj.governance, purpose, case, authorisation)
    data = photo.read_bytes()
    with Engine(ctx.obj) as engine:
        result, _ = actions.search(
            actions.Caller.command_line(engine), bound, data, top, face, collection
        )
        persons = PeopleStore(engine.catalog).persons_of_faces(
            None, [h.face_id for h in result.hits]
        )
    if sheet is not None:
        sheet.write_bytes(contact_sheet(result.probe_faces[result.face_index], result.hits))
    if as_json:
        print_json(search_json(result, persons))
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
            | ({"video": h.video | {"time": time_text(h.video["time_ms"])}} if h.video else {})
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
    moments = any(h.video for h in result.hits)
    if moments:
        table.add_column("at (video)")
    table.add_column("face")
    table.add_column("person (appearances)")
    for h in result.hits:
        fmr = f"{h.estimated_fmr:.0e}" if h.estimated_fmr is not None else ""
        quality = f"{h.quality:.2f}" if h.quality is not None else ""
        cells = [str(h.rank), f"{h.score:.3f}", h.band or "", fmr, quality, h.collection,
                 h.source_url or h.path]  # fmt: skip
        if dated:
            cells.append((h.captured_at or "")[:10])
        if moments:
            cells.append(time_text(h.video["time_ms"]) if h.video else "")
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
