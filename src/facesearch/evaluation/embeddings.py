"""Labelled image files → one face embedding each, cached per model and file content.

An evaluation embeds thousands of images; the cache (one .npz per recogniser and
detector setting, keyed by each file's sha256) makes every later run over the
same files take seconds. Each image contributes its face nearest the centre,
as in LFW, where other people may appear at the edges. Every face is embedded
as it is and mirrored, so test-time flip is measured without a second pass.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ImageRejected
from ..models import declared
from ..models.cache import ModelCache
from ..models.registry import ModelSpec
from ..models.registry import get as get_model
from ..parallel import run_bounded
from ..pipeline.align import align
from ..pipeline.analyze import load_embedder
from ..pipeline.decode import decode
from ..pipeline.detect import Detector
from ..pipeline.embed import FaceEmbedder, mirror, normalise
from ..pipeline.quality import quality
from ..types import Detection

CHUNK = 32
SAVE_EVERY = 2000


@dataclass
class Embeddings:
    """One row per input file; `found` is False where no face was detected."""

    model: str
    paths: list[Path]
    found: np.ndarray  # (n,) bool
    quality: np.ndarray  # (n,) float32
    det_score: np.ndarray  # (n,) float32
    plain: np.ndarray  # (n, d) unit rows, zeros where not found
    mirrored: np.ndarray  # (n, d) embeddings of the mirrored faces

    def vectors(self, flip: bool = False) -> np.ndarray:
        if not flip:
            return self.plain
        fused = normalise(self.plain + self.mirrored)
        fused[~self.found] = 0.0
        return fused


def cache_key(spec: ModelSpec, settings: Settings) -> str:
    d = settings.detect
    return (
        f"{spec.name}-{spec.version}__{settings.detector}"
        f"-s{d.score_threshold}-n{d.nms_threshold}-m{d.min_face_px}-x{d.max_side}"
    )


class EmbeddingCache:
    """sha256 → (found, quality, detection score, plain, mirrored) for one model."""

    def __init__(self, path: Path, dim: int, read: bool = True) -> None:
        self.path = path
        self.write = read
        self.dim = dim
        self.rows: dict[str, tuple[bool, float, float, np.ndarray, np.ndarray]] = {}
        self.dirty = 0
        if read and path.is_file():
            with np.load(path) as npz:
                # Each key of an .npz is read from the file anew: read each array once.
                data = {key: npz[key] for key in npz.files}
            for i, sha in enumerate(data["sha256"]):
                self.rows[str(sha)] = (
                    bool(data["found"][i]), float(data["quality"][i]),
                    float(data["det_score"][i]), data["plain"][i], data["mirrored"][i],
                )  # fmt: skip

    def has(self, sha256: str, mirrored: bool) -> bool:
        row = self.rows.get(sha256)
        # A mirror that was not embedded is stored as NaN.
        return row is not None and not (mirrored and np.isnan(row[4]).any())

    def save(self) -> None:
        if not self.dirty or not self.write:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.rows)
        values = [self.rows[k] for k in keys]
        empty = np.zeros((0, self.dim), np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                sha256=np.array(keys, dtype="U64"),
                found=np.array([v[0] for v in values], bool),
                quality=np.array([v[1] for v in values], np.float32),
                det_score=np.array([v[2] for v in values], np.float32),
                plain=np.stack([v[3] for v in values]) if values else empty,
                mirrored=np.stack([v[4] for v in values]) if values else empty,
            )
        os.replace(tmp, self.path)
        self.dirty = 0


Progress = Callable[[int, int], None]


def embed_files(
    paths: Sequence[Path],
    settings: Settings,
    models: Sequence[str],
    progress: Progress | None = None,
    mirrored: bool = True,
    use_cache: bool = True,
) -> dict[str, Embeddings]:
    """Embeddings of `paths` by each recogniser in `models`, computing only what the
    cache lacks, with `settings.workers` processes. Without `mirrored`, the mirror
    images are not embedded (half the cost) and flip cannot be measured. Without
    `use_cache`, everything is computed afresh and nothing is written."""
    declared.install(settings)
    specs = [get_model(m) for m in models]
    folder = settings.cache_dir / "eval"
    caches = {
        s.name: EmbeddingCache(
            folder / f"{cache_key(s, settings)}.npz", s.embedding_dim or 0, read=use_cache
        )
        for s in specs
    }  # fmt: skip
    shas = [_sha256(p) for p in paths]
    missing = sorted({i for i, sha in enumerate(shas)
                      for s in specs if not caches[s.name].has(sha, mirrored)})  # fmt: skip
    done = len(paths) - len(missing)
    if progress:
        progress(done, len(paths))
    if missing:
        cache = ModelCache(settings.models_dir)
        for spec in [get_model(settings.detector), *specs]:
            cache.ensure(spec)
            for name in spec.requires:
                cache.ensure(get_model(name))
        work = [[(str(paths[i]), shas[i]) for i in missing[s : s + CHUNK]]
                for s in range(0, len(missing), CHUNK)]  # fmt: skip

        def store(rows: list[tuple[str, dict]]) -> None:
            nonlocal done
            for sha, per_model in rows:
                for name, row in per_model.items():
                    caches[name].rows[sha] = row
                    caches[name].dirty += 1
            done += len(rows)
            if progress:
                progress(done, len(paths))
            if any(c.dirty >= SAVE_EVERY for c in caches.values()):
                for c in caches.values():
                    c.save()

        try:
            _run(settings, list(models), mirrored, work, store)
        finally:
            for c in caches.values():
                c.save()
    return {s.name: _collect(s, paths, shas, caches[s.name]) for s in specs}


def _collect(spec: ModelSpec, paths: Sequence[Path], shas: list[str], cache: EmbeddingCache):
    rows = [cache.rows[sha] for sha in shas]
    dim = cache.dim
    return Embeddings(
        model=spec.name,
        paths=list(paths),
        found=np.array([r[0] for r in rows], bool),
        quality=np.array([r[1] for r in rows], np.float32),
        det_score=np.array([r[2] for r in rows], np.float32),
        plain=np.stack([r[3] for r in rows]) if rows else np.zeros((0, dim), np.float32),
        mirrored=np.stack([r[4] for r in rows]) if rows else np.zeros((0, dim), np.float32),
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def central_face(detections: list[Detection], width: int, height: int) -> Detection | None:
    """The detection whose box centre is nearest the image centre."""
    if not detections:
        return None

    def offset(d: Detection) -> float:
        x, y, w, h = d.box
        return (x + w / 2 - width / 2) ** 2 + (y + h / 2 - height / 2) ** 2

    return min(detections, key=offset)


class _Worker:
    def __init__(self, settings: Settings, models: list[str], mirrored: bool = True) -> None:
        self.mirrored = mirrored
        declared.install(settings)
        cache = ModelCache(settings.models_dir)
        self.settings = settings
        self.detector = Detector(cache.ensure(get_model(settings.detector)), settings.detect)
        self.embedders: dict[str, FaceEmbedder] = {
            m: load_embedder(cache, get_model(m)) for m in models
        }

    def run(self, chunk: list[tuple[str, str]]) -> list[tuple[str, dict]]:
        out = []
        for path, sha in chunk:
            per_model = {}
            face = None
            pixels = None
            try:
                pixels = decode(Path(path).read_bytes(), self.settings.decode).pixels
                face = central_face(self.detector.detect(pixels), pixels.shape[1], pixels.shape[0])
            except (ImageRejected, OSError):
                pass
            for name, embedder in self.embedders.items():
                dim = embedder.spec.embedding_dim or 0
                if face is None or pixels is None:
                    zero = np.zeros(dim, np.float32)
                    per_model[name] = (False, 0.0, 0.0, zero, zero)
                    continue
                crops = embedder.crops(pixels, [face])
                plain = embedder.embed(crops)[0]
                flipped = np.full(dim, np.nan, np.float32)
                if self.mirrored:
                    flipped = embedder.embed([mirror(c) for c in crops])[0]
                score = quality(face, align(pixels, face.landmarks))
                per_model[name] = (True, score, face.score, plain, flipped)
            out.append((sha, per_model))
        return out


_worker: _Worker | None = None


def _init(settings_json: str, models: list[str], mirrored: bool) -> None:
    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    global _worker
    _worker = _Worker(Settings.model_validate_json(settings_json), models, mirrored)


def _task(chunk: list[tuple[str, str]]) -> list[tuple[str, dict]]:
    assert _worker is not None
    return _worker.run(chunk)


def _run(
    settings: Settings, models: list[str], mirrored: bool, work: list, store: Callable
) -> None:
    if settings.workers <= 1:
        worker = _Worker(settings, models, mirrored)
        for chunk in work:
            store(worker.run(chunk))
        return
    run_bounded(
        settings.workers, _init, (settings.model_dump_json(), models, mirrored), _task, work,
        store,
    )  # fmt: skip
