"""Ingest: items → content hash → (worker processes) analyse → catalog, batch by batch.

Each batch of results is stored in one transaction, and an image already in
the collection (same content hash) is skipped before any work is done. A run
that is interrupted, by Ctrl-C or kill -9, therefore resumes where it stopped
when started again: nothing committed is lost and nothing is stored twice.

A video is probed here (its limits checked, its end found) and cut into segments;
each segment is a unit of work of its own, for a worker process or a Ray actor as
for a batch of photos, and is stored in its own transaction (store/videos.py), so
a run cut short in the middle of a long file resumes at its first segment not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import Settings
from .errors import FacesearchError, StorageError, VideoRejected
from .models.registry import get as get_model
from .parallel import run_bounded
from .pipeline import video
from .pipeline.analyze import Analyzer
from .pipeline.sources import SourceRefused, hash_source, iter_sources, read_source
from .pipeline.video_analyze import SegmentResult, SegmentWork, analyze_work
from .store import videos
from .store.catalog import Catalog, Collection
from .types import ImageResult, SourceItem

Work = list[tuple[SourceItem, str, bytes]] | SegmentWork


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
    # Videos: seconds of video this run has to analyse (known as each file is probed) and
    # has stored, segments stored, and tracks found.
    video_seconds_total: float = 0.0
    video_seconds: float = 0.0
    segments: int = 0
    tracks: int = 0
    frames: int = 0  # video frames sampled and analysed
    detections: int = 0  # faces detected in them, before tracking

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

    failed_videos: set[str] = set()

    def store_segment(result: SegmentResult) -> None:
        clock = time.perf_counter()
        work = result.work
        if work.sha256 in failed_videos:
            return
        if result.error is not None:
            # The file is unusable: what was stored of it goes, its error is recorded.
            failed_videos.add(work.sha256)
            videos.drop_partial(catalog, collection, work.sha256)
            store([ImageResult(work.item, work.sha256, work.size_bytes, error=result.error)])
            return
        if screen is not None:
            result, refused = _screen_tracks(result, screen)
            report.blocked += refused
        saved = videos.store_segment(
            catalog, collection, report.run_id, result, model.name, model.version,
            stitch=(settings.video.track_gap_s * 1000, settings.video.track_similarity),
        )  # fmt: skip
        for stage, seconds in result.timings.items():
            report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds
        report.stage_seconds["store"] = (
            report.stage_seconds.get("store", 0.0) + time.perf_counter() - clock
        )
        report.images += int(saved.new_video)
        report.faces += saved.faces
        report.tracks += saved.tracks
        report.segments += 1
        report.frames += result.frames
        report.detections += result.detections
        report.video_seconds += work.seconds
        if on_commit is not None and saved.faces:
            on_commit()
        report.done += int(saved.complete and saved.stored)
        report.seconds = time.perf_counter() - started
        if progress:
            progress(report)

    def consume(results: list[ImageResult] | SegmentResult) -> None:
        if isinstance(results, SegmentResult):
            store_segment(results)
        else:
            store(results)

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

    batches = _batches(items, catalog, collection, settings, skip_duplicate, store, report)
    try:
        if progress:  # the total is known before the first file is read
            progress(report)
        if settings.ray.address:
            _run_on_ray(settings, batches, consume, report)
        elif settings.workers <= 1:
            analyzer = analyzer or Analyzer.load(settings)
            for batch in batches:
                consume(analyze_work(analyzer, batch))
        else:
            _run_in_pool(settings, batches, consume)
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
    report: IngestReport,
) -> Iterator[Work]:
    """Batches of new files with their bytes and hash, and the segments of each video not
    yet stored; known content is skipped here."""
    seen: set[str] = set()
    batch: list[tuple[SourceItem, str, bytes]] = []
    for item in items:
        if item.refused is not None:
            store([ImageResult(item, "", 0, error=item.refused)])
            continue
        if video.is_video(item.path):
            yield from _video_segments(item, catalog, collection, settings, seen, skip_duplicate,
                                       store, report)  # fmt: skip
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


def _video_segments(
    item: SourceItem, catalog: Catalog, collection: Collection, settings: Settings,
    seen: set[str], skip_duplicate: Callable[[], None],
    store: Callable[[list[ImageResult]], None], report: IngestReport,
) -> Iterator[SegmentWork]:  # fmt: skip
    """The segments of a video still to analyse; a video refused (limits, damage) is
    recorded as its file's error here, before any frame is decoded."""
    try:
        sha256, size = hash_source(item.path, settings.video.max_bytes)
        info = video.probe(item.path, settings.video)
    except (SourceRefused, VideoRejected) as exc:
        store([ImageResult(item, "", 0, error=str(exc))])
        return
    held = videos.progress(catalog, collection, sha256)
    if sha256 in seen or (held is not None and held[0]):
        skip_duplicate()
        return
    seen.add(sha256)
    done = held[1] if held is not None else set()
    spans = video.segments(info, settings.video)
    for index, (start_ms, end_ms) in enumerate(spans):
        if index not in done:
            report.video_seconds_total += (end_ms - start_ms) / 1000
    for index, (start_ms, end_ms) in enumerate(spans):
        if index not in done:
            yield SegmentWork(item, sha256, size, info, index, len(spans), start_ms, end_ms)


def _screen_tracks(result: SegmentResult, screen: Screen) -> tuple[SegmentResult, int]:
    """The segment without the tracks of anyone on the block-list: a track is one person,
    so a track with any face refused goes whole. Returns it and the faces refused."""
    kept, refused = [], 0
    for track in result.tracks:
        faces = [f.face for f in track.faces]
        probe = ImageResult(result.work.item, result.work.sha256, 0, faces=faces)
        _, blocked = screen(probe)
        if blocked:
            refused += len(faces)
        else:
            kept.append(track)
    if not refused:
        return result, 0
    return replace(result, tracks=kept), refused


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


def _analyze_batch(batch: Work) -> list[ImageResult] | SegmentResult:
    assert _worker_analyzer is not None
    return analyze_work(_worker_analyzer, batch)
