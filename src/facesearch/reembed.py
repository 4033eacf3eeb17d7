"""Re-embed a collection with another recogniser, from its stored images.

Each stored face of the source model is embedded again from its image file, at the
box and landmarks found at ingest (so no face erased since comes back, and no new
one is added), and staged. Work is committed a batch of images at a time: an
interrupted run resumes where it stopped and stages nothing twice. When every face
is staged, the collection's faces of the new model appear in one transaction, so a
search with that model sees the collection whole or not at all. The source model's
faces stay, for engines still configured with it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .errors import FacesearchError, ImageRejected
from .models import declared
from .models.cache import ModelCache
from .models.registry import get as get_model
from .pipeline.analyze import load_embedder
from .pipeline.decode import decode
from .pipeline.embed import embed_crops
from .store.catalog import Catalog, Collection
from .store.reembed import ReembedStore
from .types import Detection

BATCH_IMAGES = 16


@dataclass
class ReembedReport:
    collection: str
    source: str
    target: str
    faces: int = 0  # source faces in the collection
    staged: int = 0  # of those, embedded with the target (this run and earlier ones)
    images_done: int = 0  # this run
    images_total: int = 0  # images pending when this run started
    missing: list[str] = field(default_factory=list)  # image files gone or changed
    completed: bool = False
    faces_added: int = 0
    seconds: float = 0.0


Progress = Callable[[ReembedReport], None]


def reembed(
    settings: Settings, catalog: Catalog, collection: Collection, model: str,
    source_model: str | None = None, progress: Progress | None = None,
    skip_missing: bool = False,
) -> ReembedReport:  # fmt: skip
    declared.install(settings)
    target_spec = get_model(model)
    source_spec = get_model(source_model or settings.embedder)
    if target_spec.task != "embed":
        raise FacesearchError(f"{model} is a {target_spec.task} model, not a recogniser")
    source = (source_spec.name, source_spec.version)
    target = (target_spec.name, target_spec.version)
    if source == target:
        raise FacesearchError(f"the faces of {collection.name} are already embedded by {model}")
    store = ReembedStore(catalog)
    report = ReembedReport(collection.name, " ".join(source), " ".join(target))
    clock = time.perf_counter()
    pending = store.pending_images(collection, source, target)
    report.images_total = len(pending)
    if pending:
        cache = ModelCache(settings.models_dir)
        for name in target_spec.requires:
            cache.ensure(get_model(name))
        embedder = load_embedder(cache, target_spec, settings.flip_embeddings)
        for start in range(0, len(pending), BATCH_IMAGES):
            vectors = {}
            for image_id, path, sha256 in pending[start : start + BATCH_IMAGES]:
                pixels = _pixels(Path(path), sha256, settings)
                if pixels is None:
                    report.missing.append(path)
                    continue
                faces = store.source_faces(image_id, source)
                detections = [Detection(f.box, f.landmarks, f.det_score) for f in faces]
                embedded = embed_crops(embedder, embedder.crops(pixels, detections))
                vectors.update(zip((f.face_id for f in faces), embedded, strict=True))
            store.stage(collection, target, vectors)
            report.images_done = min(start + BATCH_IMAGES, len(pending))
            if progress:
                progress(report)
    now = store.progress(collection, source, target)
    report.faces, report.staged = now.faces, now.staged
    if now.faces and (now.staged == now.faces or (skip_missing and report.missing)):
        report.faces_added = store.complete(collection, source, target)
        report.completed = True
    elif not now.faces:
        report.completed = True  # every image already has faces of the target model
    report.seconds = time.perf_counter() - clock
    return report


def _pixels(path: Path, sha256: str, settings: Settings):
    """The image's pixels, or None when its file is gone or no longer the one stored."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        return decode(data, settings.decode).pixels
    except ImageRejected:
        return None
