"""Organisation scoping: another organisation's data is answered as not found."""

from __future__ import annotations

from ..errors import NotFound
from ..governance.auth import Actor
from ..store.catalog import Catalog, Collection, FaceRow


def own_collection(catalog: Catalog, actor: Actor, name: str) -> Collection:
    try:
        collection = catalog.collection(name)
    except NotFound:
        collection = None
    if collection is None or collection.organisation_id != actor.organisation_id:
        raise NotFound(f"no collection named {name!r}")
    return collection


def own_collection_names(catalog: Catalog, actor: Actor) -> list[str]:
    return [c["name"] for c in catalog.collections(actor.organisation_id)]


def own_image(catalog: Catalog, actor: Actor, image_id: int) -> dict:
    try:
        image = catalog.image(image_id)
    except NotFound:
        image = None
    if image is None or image["organisation_id"] != actor.organisation_id:
        raise NotFound(f"no image with id {image_id}")
    return image


def own_face(catalog: Catalog, actor: Actor, face_id: int) -> FaceRow:
    row = catalog.faces([face_id]).get(face_id)
    if row is None or own_collection_or_none(catalog, actor, row.collection) is None:
        raise NotFound(f"no face with id {face_id}")
    return row


def own_collection_or_none(catalog: Catalog, actor: Actor, name: str) -> Collection | None:
    try:
        return own_collection(catalog, actor, name)
    except NotFound:
        return None
