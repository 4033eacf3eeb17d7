"""Organisation scoping: another organisation's data is answered as not found."""

from __future__ import annotations

from ..errors import NotFound
from ..governance.auth import Actor
from ..store.catalog import Catalog, Collection, FaceRow


def own_collection(catalog: Catalog, actor: Actor, name: str) -> Collection:
    try:
        collection = catalog.collection(name, actor.organisation_id)
    except NotFound:
        collection = None
    if collection is None or collection.organisation_id != actor.organisation_id:
        raise NotFound(f"no collection named {name!r}")
    return collection


def own_collection_names(catalog: Catalog, actor: Actor) -> list[str]:
    return [c["name"] for c in catalog.collections(actor.organisation_id)]


def own_collections(catalog: Catalog, actor: Actor) -> list[Collection]:
    """Every collection of the actor's organisation (names alone are ambiguous
    across organisations, so the engine is given these)."""
    return [own_collection(catalog, actor, name) for name in own_collection_names(catalog, actor)]


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
    # By the image's organisation: another organisation may use the same collection name.
    if row is None or catalog.image(row.image_id)["organisation_id"] != actor.organisation_id:
        raise NotFound(f"no face with id {face_id}")
    return row


def own_track(catalog: Catalog, actor: Actor, track_id: int) -> dict:
    """A video track of the actor's organisation (store/videos.py)."""
    from ..store import videos

    track = videos.track(catalog, track_id)
    if track is None or track["organisation_id"] != actor.organisation_id:
        raise NotFound(f"no track with id {track_id}")
    return track
