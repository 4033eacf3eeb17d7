"""People: the organisation's persons, their appearances, and the operations on them.

Reading persons shows faces (`faces:read`); changing them needs `people`;
searching by a person is a search (`search`, with a purpose and a case). A person
of another organisation is "not found". Every change is audited in the same
transaction and answers the operation id that `POST /api/people/operations/{id}/undo`
takes back.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from ...errors import FacesearchError
from ...governance import actions
from ...governance.audit import Who
from ...governance.auth import Actor, Permission
from ...governance.purpose import bind
from ...people.actions import PersonActions
from ...people.search import HOW
from ...store.people import NAME_LIMIT, PeopleStore, Person
from ..deps import ServicesDep, require
from ..schemas import Box, Match
from ..scope import caller, who_is
from ..state import Services

router = APIRouter(prefix="/api/people", tags=["people"])
P = Permission


class PersonOut(BaseModel):
    id: int
    name: str | None
    hidden: bool
    faces: int = Field(description="the person's number of appearances")
    cover_face_id: int | None
    thumbnail_url: str | None
    version: int = Field(description="send it back to refuse a change to a person changed since")
    merged_into: int | None
    created_by: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        cover = person.cover_face_id
        return cls(
            id=person.id, name=person.name, hidden=person.hidden, faces=person.faces,
            cover_face_id=cover,
            thumbnail_url=f"/api/faces/{cover}/thumbnail" if cover else None,
            version=person.version, merged_into=person.merged_into,
            created_by=person.created_by, created_at=person.created_at,
            updated_at=person.updated_at,
        )  # fmt: skip


class Appearance(BaseModel):
    face_id: int
    image_id: int
    collection: str
    filename: str
    source_url: str | None
    captured_at: str | None
    added_at: str
    quality: float
    box: Box
    pinned: bool = Field(description="placed by a person: reclustering keeps it here")
    thumbnail_url: str
    image_url: str


class OperationOut(BaseModel):
    id: int
    actor: str
    kind: str
    persons: list[int]
    at: str
    undone_at: str | None
    undone_by: str | None


class PersonDetail(PersonOut):
    appearances: list[Appearance]
    operations: list[OperationOut]


class PersonChange(BaseModel):
    name: str | None = Field(None, max_length=4 * NAME_LIMIT, description="empty clears it")
    hidden: bool | None = None
    version: int | None = None


class MergeIn(BaseModel):
    into: int = Field(description="the person that keeps the faces")
    version: int | None = None


class FacesIn(BaseModel):
    face_ids: list[int] = Field(min_length=1, max_length=10_000)
    into: int | None = Field(None, description="split: an existing person (default: a new one)")
    version: int | None = None


class OperationDone(BaseModel):
    operation: int = Field(description="undo it with POST /api/people/operations/{id}/undo")
    person: PersonOut


class UndoOut(BaseModel):
    operation: int
    kind: str
    persons: list[int]


class PersonSearchIn(BaseModel):
    purpose: str | None = None
    case: str | None = None
    authorisation: str | None = None
    top: int = Field(20, ge=1)
    how: str = Field("max", description=" or ".join(HOW))


class PersonSearchOut(BaseModel):
    person: int
    how: str
    searched_faces: int
    matches: list[Match]
    search_id: int
    purpose: str
    case: str


def _actions(services: Services, actor: Actor) -> tuple[PersonActions, Who]:
    catalog = services.catalog
    # The audit entry commits with the change: through this catalog's connection.
    return PersonActions(catalog, actions.catalog_audit(services.settings, catalog)), who_is(actor)


def _detail(store: PeopleStore, organisation_id: int, person_id: int) -> PersonDetail:
    person = store.person(organisation_id, person_id)
    appearances = [
        Appearance(
            face_id=f["face_id"], image_id=f["image_id"], collection=f["collection"],
            filename=f["path"].replace("\\", "/").rsplit("/", 1)[-1],
            source_url=f["source_url"], captured_at=f["captured_at"], added_at=f["added_at"],
            quality=round(f["quality"], 4), box=Box.of((f["x"], f["y"], f["w"], f["h"])),
            pinned=f["pinned"], thumbnail_url=f"/api/faces/{f['face_id']}/thumbnail",
            image_url=f"/api/images/{f['image_id']}/file",
        )
        for f in store.appearances(organisation_id, person_id)
    ]  # fmt: skip
    operations = [OperationOut(**op) for op in store.operations(organisation_id, person_id)]
    return PersonDetail(
        **PersonOut.of(person).model_dump(), appearances=appearances, operations=operations
    )


@router.get("", response_model=list[PersonOut])
def list_people(
    services: ServicesDep, response: Response, hidden: bool = False, limit: int = 200,
    offset: int = 0, actor: Actor = require(P.FACES_READ),
) -> list[PersonOut]:  # fmt: skip
    """The organisation's persons, most appearances first (hidden ones with hidden=true)."""
    response.headers["Cache-Control"] = "no-store"
    store = PeopleStore(services.catalog)
    persons = store.persons(actor.organisation_id, hidden, min(max(limit, 1), 1000), offset)
    return [PersonOut.of(p) for p in persons]


@router.get("/{person_id}", response_model=PersonDetail)
def get_person(
    person_id: int, services: ServicesDep, response: Response,
    actor: Actor = require(P.FACES_READ),
) -> PersonDetail:  # fmt: skip
    """A person with every appearance, oldest first, and the operations on it."""
    response.headers["Cache-Control"] = "no-store"
    return _detail(PeopleStore(services.catalog), actor.organisation_id, person_id)


@router.patch("/{person_id}", response_model=OperationDone)
def change_person(
    person_id: int, body: PersonChange, services: ServicesDep,
    actor: Actor = require(P.PEOPLE),
) -> OperationDone:  # fmt: skip
    """Rename (an empty name clears it) or hide/show a person: one change per request."""
    actions, who = _actions(services, actor)
    if (body.name is None) == (body.hidden is None):
        raise FacesearchError("send either a 'name' or 'hidden'")
    if body.name is not None:
        person, op = actions.name(who, person_id, body.name, expected=body.version)
    else:
        person, op = actions.hide(who, person_id, bool(body.hidden), expected=body.version)
    return OperationDone(operation=op, person=PersonOut.of(person))


@router.post("/{person_id}/merge", response_model=OperationDone)
def merge_person(
    person_id: int, body: MergeIn, services: ServicesDep, actor: Actor = require(P.PEOPLE)
) -> OperationDone:
    """Merge this person into `into`: its faces become `into`'s."""
    actions, who = _actions(services, actor)
    person, op = actions.merge(who, person_id, body.into, expected=body.version)
    return OperationDone(operation=op, person=PersonOut.of(person))


@router.post("/{person_id}/split", response_model=OperationDone)
def split_person(
    person_id: int, body: FacesIn, services: ServicesDep, actor: Actor = require(P.PEOPLE)
) -> OperationDone:
    """Move some of the person's faces into a new person (or `into` another)."""
    actions, who = _actions(services, actor)
    person, op = actions.split(who, person_id, body.face_ids, body.into, expected=body.version)
    return OperationDone(operation=op, person=PersonOut.of(person))


@router.post("/{person_id}/not-this", response_model=OperationDone)
def not_this_person(
    person_id: int, body: FacesIn, services: ServicesDep, actor: Actor = require(P.PEOPLE)
) -> OperationDone:
    """These faces are not this person: they leave it and never join it again."""
    actions, who = _actions(services, actor)
    person, op = actions.reject(who, person_id, body.face_ids, expected=body.version)
    return OperationDone(operation=op, person=PersonOut.of(person))


@router.post("/operations/{operation_id}/undo", response_model=UndoOut)
def undo_operation(
    operation_id: int, services: ServicesDep, actor: Actor = require(P.PEOPLE)
) -> UndoOut:
    """Put back what a person operation changed (later operations on its persons first)."""
    actions, who = _actions(services, actor)
    return UndoOut(**actions.undo(who, operation_id))


@router.post("/recluster")
def recluster(services: ServicesDep, actor: Actor = require(P.PEOPLE)) -> dict:
    """Cluster all of the organisation's faces again, keeping every human decision."""
    actions, who = _actions(services, actor)
    with services.write_lock:
        return actions.recluster(who, services.engine.people().recluster)


@router.post("/{person_id}/search", response_model=PersonSearchOut)
def search_person(
    person_id: int, body: PersonSearchIn, services: ServicesDep, response: Response,
    actor: Actor = require(P.SEARCH),
) -> PersonSearchOut:  # fmt: skip
    """Stored faces ranked against all of the person's faces, for a purpose and a case."""
    bound = bind(services.settings.governance, body.purpose, body.case, body.authorisation)
    if body.top > services.settings.api.max_top_k:
        raise FacesearchError(f"top must be at most {services.settings.api.max_top_k}")
    if body.how not in HOW:
        raise FacesearchError(f"how must be one of {', '.join(HOW)}")
    response.headers["Cache-Control"] = "no-store"
    PeopleStore(services.catalog).person(actor.organisation_id, person_id)
    hits, searched, entry = actions.search_person(
        caller(services, actor), bound, person_id, body.top, body.how
    )
    return PersonSearchOut(
        person=person_id, how=body.how, searched_faces=searched,
        matches=[Match.from_hit(h) for h in hits], search_id=entry.seq,
        purpose=bound.purpose, case=bound.case,
    )  # fmt: skip
