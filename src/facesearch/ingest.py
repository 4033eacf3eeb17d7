"""Ingest: items → content hash → (worker processes) analyse → catalog, batch by batch.

Each batch of results is stored in one transaction, and an image already in
the collection (same content hash) is skipped before any work is done. A run
that is interrupted, by Ctrl-C or kill -9, therefore resumes where it stopped
when started again: nothing committed is lost and nothing is stored twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .errors import FacesearchError, StorageError
from .governance.audit import IngestFinished
from .models.registry import get as get_model
from .parallel import run_bounded
from .pipeline.analyze import Analyzer
from .pipeline.sources import SourceRefused, iter_sources, read_source
from .store.catalog import Catalog, Collection
from .types import ImageResult, SourceItem

Work = list[tuple[SourceItem, str, bytes]]


@dataclass
class IngestReport:
    run_id: int
    total: int = 0
    done: int = 0
    images: int = 0
    faces: int = 0
    duplicates: int = 0
    errors: int = 0
    blocked: int = 0
    status: str = "running"
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # On a Ray cluster: images analysed per node address, actors per device
    # ("cpu", "cuda"), and batches sent again after the actor or node that held
    # them died.
    ray_nodes: dict[str, int] = field(default_factory=dict)
    ray_devices: dict[str, int] = field(default_factory=dict)
    resubmitted: int = 0

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


Progress = Callable[[IngestReport], None]
# Called on each analysed image before it is stored; returns the image with
# the faces that may be stored and how many it refused (the block-list).
Screen = Callable[[ImageResult], tuple[ImageResult, int]]


def ingest(
    settings: Settings,
    catalog: Catalog,
    collection: Collection,
    paths: list[Path],
    progress: Progress | None = None,
    analyzer: Analyzer | None = None,
    screen: Screen | None = None,
    on_commit: Callable[[], None] | None = None,
    allowed_roots: list[Path] | None = None,
) -> IngestReport:
    """`on_commit` runs after each batch is committed to the catalog; `allowed_roots`
    (a server's ingest folders) bounds every file read, links and manifest lines too."""
    items = list(iter_sources(paths, allowed_roots))
    model = get_model(settings.embedder)
    report = IngestReport(catalog.start_run(collection, [str(p) for p in paths]), total=len(items))
    started = time.perf_counter()

    def store(results: list[ImageResult]) -> None:
        clock = time.perf_counter()
        if screen is not None:
            screened = [screen(r) if r.error is None else (r, 0) for r in results]
            results = [r for r, _ in screened]
            report.blocked += sum(n for _, n in screened)
        images, faces, errors = catalog.store_results(
            collection, report.run_id, results, model.name, model.version
        )
        for result in results:
            for stage, seconds in result.timings.items():
                report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
        report.stage_seconds["store"] = (
            report.stage_seconds.get("store", 0.0) + time.perf_counter() - clock
        )
        report.images += images
        report.faces += faces
        report.errors += errors
        if on_commit is not None and faces:
            on_commit()
        report.done += len(results)
        report.seconds = time.perf_counter() - started
        if progress:
            progress(report)

    def skip_duplicate() -> None:
        report.duplicates += 1
        report.done += 1
        if progress:
            progress(report)

    batches = _batches(items, catalog, collection, settings, skip_duplicate, store)
    try:
        if progress:  # the total is known before the first file is read
            progress(report)
        if settings.ray.address:
            _run_on_ray(settings, batches, store, report)
        elif settings.workers <= 1:
            analyzer = analyzer or Analyzer.load(settings)
            for batch in batches:
                store(analyzer.analyze_batch(batch))
        else:
            _run_in_pool(settings, batches, store)
    except BaseException as exc:
        # A failure (a bug, a lost cluster, a full disk) is not an interruption (Ctrl-C,
        # a job stopped by its server's shutdown or a cancel).
        report.status = "failed" if isinstance(exc, Exception) else "interrupted"
        # On a full disk this write fails too; the run then stays 'running', as a killed
        # one does, and the error that stopped it is the one to report.
        with contextlib.suppress(StorageError):
            catalog.finish_run(report.run_id, report.status, _counts(report))
        raise
    report.status = "finished"
    report.seconds = time.perf_counter() - started
    catalog.finish_run(report.run_id, report.status, _counts(report))
    return report


def ingest_ended(
    collection: str, report: IngestReport | None, exc: BaseException | None = None
) -> IngestFinished:
    """The audit event of how an ingest ended: from its report, or, where it stopped
    before its run began (a missing folder, a model that cannot be fetched), from the
    exception that stopped it."""
    if report is not None:
        status = report.status
        if exc is not None and status in ("running", "finished"):
            status = "failed" if isinstance(exc, Exception) else "interrupted"
        return IngestFinished(
            collection, status, report.images, report.faces, report.blocked, report.run_id
        )
    status = "interrupted" if exc is not None and not isinstance(exc, Exception) else "failed"
    return IngestFinished(collection, status, 0, 0, 0, 0)


def _counts(report: IngestReport) -> dict[str, int]:
    return {
        "images": report.images,
        "faces": report.faces,
        "duplicates": report.duplicates,
        "errors": report.errors,
    }


def _batches(
    items: list[SourceItem],
    catalog: Catalog,
    collection: Collection,
    settings: Settings,
    skip_duplicate: Callable[[], None],
    store: Callable[[list[ImageResult]], None],
) -> Iterator[Work]:
    """Batches of new files with their bytes and hash; known content is skipped here."""
    seen: set[str] = set()
    batch: Work = []
    for item in items:
        if item.refused is not None:
            store([ImageResult(item, "", 0, error=item.refused)])
            continue
        try:
            data = read_source(item.path, settings.decode.max_bytes)
        except SourceRefused as exc:
            store([ImageResult(item, "", 0, error=str(exc))])
            continue
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 in seen or catalog.has_image(collection, sha256):
            skip_duplicate()
            continue
        seen.add(sha256)
        batch.append((item, sha256, data))
        if len(batch) >= settings.batch_images:
            yield batch
            batch = []
    if batch:
        yield batch


def _run_in_pool(
    settings: Settings, batches: Iterator[Work], store: Callable[[list[ImageResult]], None]
) -> None:
    run_bounded(
        settings.workers, _init_worker, (settings.model_dump_json(),), _analyze_batch, batches,
        store,
    )  # fmt: skip


def _run_on_ray(
    settings: Settings, batches: Iterator[Work], store: Callable[[list[ImageResult]], None],
    report: IngestReport,
) -> None:  # fmt: skip
    # Imported here: Ray is an optional extra, and a large import.
    try:
        from .ray_pool import run_on_ray
    except ImportError as exc:
        raise FacesearchError(
            f"ingest on a Ray cluster needs Ray ({exc}): pip install 'facesearch[ray]'"
        ) from exc

    stats = run_on_ray(settings, batches, store)
    report.ray_nodes = stats.images_by_node
    report.ray_devices = stats.devices
    report.resubmitted = stats.resubmitted


_worker_analyzer: Analyzer | None = None


def _init_worker(settings_json: str) -> None:
    import cv2

    # The parent decides when to stop; a Ctrl-C must not kill workers mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per process: the pool already uses every core.
    cv2.setNumThreads(1)
    global _worker_analyzer
    _worker_analyzer = Analyzer.load(Settings.model_validate_json(settings_json))


def _analyze_batch(batch: Work) -> list[ImageResult]:
    assert _worker_analyzer is not None
    return _worker_analyzer.analyze_batch(batch)
