"""Organisation scoping: another organisation's data is answered as not found."""

from __future__ import annotations

from ..errors import NotFound
from ..governance.actions import Caller, owned_collection, owned_face
from ..governance.audit import Who
from ..governance.auth import Actor
from ..store.catalog import Catalog, Collection, FaceRow
from .state import Services, client_origin


def who_is(actor: Actor) -> Who:
    """The actor as the audit log names them, from the client's address."""
    return Who(actor.username, actor.organisation_id, client_origin.get())


def caller(services: Services, actor: Actor) -> Caller:
    """The actor as governed actions see it: entries in the server's audit log,
    scoping read from this thread's catalog, person searches taking turns under the
    write lock (photo and face searches need none)."""
    return Caller(services.settings, services.engine, services.audit, who_is(actor),
                  services.catalog, lambda: services.write_lock)  # fmt: skip


def own_collection(catalog: Catalog, actor: Actor, name: str) -> Collection:
    return owned_collection(catalog, actor.organisation_id, name)


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
    return owned_face(catalog, actor.organisation_id, face_id)


def own_track(catalog: Catalog, actor: Actor, track_id: int) -> dict:
    """A video track of the actor's organisation (store/videos.py)."""
    from ..store import videos

    track = videos.track(catalog, track_id)
    if track is None or track["organisation_id"] != actor.organisation_id:
        raise NotFound(f"no track with id {track_id}")
    return track
