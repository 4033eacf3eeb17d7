"""Videos in the catalog: a video is an `images` row of kind 'video'; its faces are face
rows with their track and moment; its tracks and stored segments have tables of their own.

A video is stored a segment at a time. Each segment's tracks, faces and `video_segments`
row commit in one transaction, the media record being made by whichever segment comes
first, so an ingest cut short anywhere resumes at the segments not yet stored and stores
nothing twice. The record is `complete` once every segment is in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import faults
from ..clock import now
from .catalog import Catalog, Collection, _context

if TYPE_CHECKING:
    from ..pipeline.video_analyze import SegmentResult


@dataclass(frozen=True)
class Moment:
    """Where a stored video face is: its track and time, the track's span, the video's length."""

    track_id: int
    time_ms: int
    start_ms: int
    end_ms: int
    duration_ms: int

    def as_dict(self) -> dict[str, int]:
        return {
            "track_id": self.track_id, "time_ms": self.time_ms, "start_ms": self.start_ms,
            "end_ms": self.end_ms, "duration_ms": self.duration_ms,
        }  # fmt: skip


@dataclass(frozen=True)
class SegmentStored:
    stored: bool  # False: this segment was already in the catalog (a replay)
    new_video: bool  # this segment made the video's media record
    tracks: int = 0
    faces: int = 0
    complete: bool = False  # every segment of the video is now stored


def progress(catalog: Catalog, collection: Collection, sha256: str) -> tuple[bool, set[int]] | None:
    """(complete, segments stored) of the video with this content; None if none is stored."""
    row = catalog.conn.execute(
        "SELECT id, complete FROM images WHERE collection_id = ? AND sha256 = ?",
        (collection.id, sha256),
    ).fetchone()
    if row is None:
        return None
    done = {
        r[0]
        for r in catalog.conn.execute(
            "SELECT segment FROM video_segments WHERE image_id = ?", (row[0],)
        )
    }
    return bool(row[1]), done


def store_segment(
    catalog: Catalog, collection: Collection, run_id: int, result: SegmentResult, model: str,
    model_version: str, stitch: tuple[float, float] | None = None,
) -> SegmentStored:  # fmt: skip
    """One analysed segment's tracks and faces, in one transaction; a replay stores nothing.

    With `stitch` (gap in ms, similarity), a track that runs to a segment's edge is joined
    with the one that takes it up on the other side, when the neighbouring segment is
    stored and the two look alike, so a person on screen across a boundary is one track."""
    work = result.work
    info = work.info
    conn = catalog.conn
    with catalog.transaction():
        row = conn.execute(
            "INSERT INTO images (collection_id, sha256, path, source_url, captured_at, caption, "
            "width, height, size_bytes, face_count, run_id, added_at, kind, duration_ms, "
            "segments, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 'video', ?, ?, 0) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (collection.id, work.sha256, str(work.item.path), work.item.source_url,
             work.item.captured_at or info.created_at, work.item.caption, info.width,
             info.height, work.size_bytes, run_id, now(), info.duration_ms, work.count),
        ).fetchone()  # fmt: skip
        new_video = row is not None
        if row is None:
            row = conn.execute(
                "SELECT id FROM images WHERE collection_id = ? AND sha256 = ?",
                (collection.id, work.sha256),
            ).fetchone()
        image_id = int(row[0])
        if conn.execute(
            "SELECT 1 FROM video_segments WHERE image_id = ? AND segment = ?",
            (image_id, work.index),
        ).fetchone():
            return SegmentStored(False, new_video)
        key = catalog.data_key(collection.id)
        seal = catalog.sealer.seal
        faces = 0
        for track in result.tracks:
            (track_id,) = conn.execute(
                "INSERT INTO tracks (image_id, collection_id, segment, start_ms, end_ms, "
                "detections) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (image_id, collection.id, work.index, track.start_ms, track.end_ms, track.seen),
            ).fetchone()
            for kept in track.faces:
                f = kept.face
                conn.execute(
                    "INSERT INTO faces (image_id, collection_id, x, y, w, h, landmarks, "
                    "det_score, quality, model, model_version, embedding, thumbnail, sealed, "
                    "track_id, time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (image_id, collection.id, *(float(v) for v in f.detection.box),
                     f.detection.landmarks.astype("<f4").tobytes(), float(f.detection.score),
                     float(f.quality), model, model_version,
                     seal(key, np.asarray(f.embedding, dtype="<f4").tobytes(),
                          _context("embedding", collection.id)),
                     seal(key, f.thumbnail, _context("thumbnail", collection.id)),
                     track_id, kept.time_ms),
                )  # fmt: skip
                faces += 1
        conn.execute(
            "INSERT INTO video_segments (image_id, segment, start_ms, end_ms, frames, detections, "
            "tracks, run_id, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, work.index, work.start_ms, work.end_ms, result.frames, result.detections,
             len(result.tracks), run_id, now()),
        )  # fmt: skip
        joined = 0
        if stitch is not None:
            for boundary in (work.start_ms, work.end_ms):
                if 0 < boundary < info.duration_ms:
                    joined += _stitch(catalog, image_id, boundary, *stitch)
        (done,) = conn.execute(
            "SELECT COUNT(*) FROM video_segments WHERE image_id = ?", (image_id,)
        ).fetchone()
        complete = done >= work.count
        conn.execute(
            "UPDATE images SET face_count = face_count + ?, complete = ? WHERE id = ?",
            (faces, 1 if complete else 0, image_id),
        )
        if complete:
            conn.execute(
                "DELETE FROM ingest_errors WHERE collection_id = ? AND path = ?",
                (collection.id, str(work.item.path)),
            )
        faults.point("catalog_commit", f"segment {work.index} of {work.item.path.name} written")
    return SegmentStored(True, new_video, len(result.tracks) - joined, faces, complete)


def _stitch(catalog: Catalog, image_id: int, boundary: int, gap_ms: float,
            similarity: float) -> int:  # fmt: skip
    """Join each track ending within `gap_ms` before `boundary` to the most alike track
    starting within `gap_ms` after it (at least `similarity`), once both sides are stored.
    The earlier track is kept, so the outcome is the same in whatever order segments come.
    Returns how many tracks were joined into others."""
    conn = catalog.conn
    sides = conn.execute(
        "SELECT start_ms, end_ms FROM video_segments WHERE image_id = ? AND (end_ms = ? OR "
        "start_ms = ?)", (image_id, boundary, boundary),
    ).fetchall()  # fmt: skip
    if len(sides) < 2:  # the other side is not stored yet: its own store joins them
        return 0
    before = conn.execute(
        "SELECT id, end_ms, detections FROM tracks WHERE image_id = ? AND end_ms < ? AND "
        "end_ms >= ? ORDER BY id", (image_id, boundary, boundary - gap_ms),
    ).fetchall()  # fmt: skip
    after = conn.execute(
        "SELECT id, end_ms, detections FROM tracks WHERE image_id = ? AND start_ms >= ? AND "
        "start_ms <= ? ORDER BY id", (image_id, boundary, boundary + gap_ms),
    ).fetchall()  # fmt: skip
    if not before or not after:
        return 0
    mean = {t[0]: _track_vector(catalog, t[0]) for t in (*before, *after)}
    pairs = sorted(
        ((float(mean[a[0]] @ mean[b[0]]), a, b) for a in before for b in after),
        key=lambda p: (-p[0], p[1][0], p[2][0]),
    )
    joined: set[int] = set()
    for score, a, b in pairs:
        if score < similarity or a[0] in joined or b[0] in joined:
            continue
        joined |= {a[0], b[0]}
        conn.execute("UPDATE faces SET track_id = ? WHERE track_id = ?", (a[0], b[0]))
        conn.execute(
            "UPDATE tracks SET end_ms = ?, detections = ? WHERE id = ?",
            (b[1], a[2] + b[2], a[0]),
        )
        conn.execute("DELETE FROM tracks WHERE id = ?", (b[0],))
    return len(joined) // 2


def _track_vector(catalog: Catalog, track_id: int) -> np.ndarray:
    vectors = list(catalog.embeddings_of(track_face_ids(catalog, track_id)).values())
    total = np.sum(vectors, axis=0) if vectors else np.zeros(1, np.float32)
    return total / (np.linalg.norm(total) or 1.0)


def drop_partial(catalog: Catalog, collection: Collection, sha256: str) -> int:
    """Delete what is stored of a video that turned out unusable part way; its faces go
    through the deletion log like any. Returns the faces deleted."""
    with catalog.transaction():
        row = catalog.conn.execute(
            "SELECT id FROM images WHERE collection_id = ? AND sha256 = ? AND kind = 'video'",
            (collection.id, sha256),
        ).fetchone()
        if row is None:
            return 0
        catalog._log_deletions("image_id = ?", (row[0],))
        deleted = catalog.conn.execute("DELETE FROM faces WHERE image_id = ?", (row[0],)).rowcount
        catalog.conn.execute("DELETE FROM images WHERE id = ?", (row[0],))
    return deleted


def moments(catalog: Catalog, face_ids: Iterable[int]) -> dict[int, Moment]:
    """The moment of each of these faces that is a video face."""
    ids = [int(i) for i in face_ids]
    found: dict[int, Moment] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        rows = catalog.conn.execute(
            "SELECT f.id, f.track_id, f.time_ms, t.start_ms, t.end_ms, i.duration_ms "
            "FROM faces f JOIN tracks t ON t.id = f.track_id JOIN images i ON i.id = f.image_id "
            f"WHERE f.id IN ({','.join('?' * len(part))})",
            part,
        )
        found.update((r[0], Moment(*(int(v or 0) for v in r[1:]))) for r in rows)
    return found


def track_face_ids(catalog: Catalog, track_id: int) -> list[int]:
    rows = catalog.conn.execute(
        "SELECT id FROM faces WHERE track_id = ? ORDER BY id", (int(track_id),)
    )
    return [r[0] for r in rows]


def video_face_ids(catalog: Catalog, image_id: int) -> list[int]:
    rows = catalog.conn.execute(
        "SELECT id FROM faces WHERE image_id = ? ORDER BY id", (int(image_id),)
    )
    return [r[0] for r in rows]


def track(catalog: Catalog, track_id: int) -> dict | None:
    """A track with its video's id and collection's organisation; None if there is none."""
    row = catalog.conn.execute(
        "SELECT t.id, t.image_id, t.start_ms, t.end_ms, t.detections, c.organisation_id, "
        "c.name AS collection FROM tracks t JOIN collections c ON c.id = t.collection_id "
        "WHERE t.id = ?",
        (int(track_id),),
    ).fetchone()
    return None if row is None else dict(row)


def tracks(catalog: Catalog, image_id: int) -> list[dict]:
    """A video's tracks in time order, each with the ids of its stored faces."""
    rows = [
        dict(r)
        for r in catalog.conn.execute(
            "SELECT id, segment, start_ms, end_ms, detections FROM tracks WHERE image_id = ? "
            "ORDER BY start_ms, id",
            (int(image_id),),
        )
    ]
    faces: dict[int, list[int]] = {}
    for face_id, track_id in catalog.conn.execute(
        "SELECT id, track_id FROM faces WHERE image_id = ? AND track_id IS NOT NULL ORDER BY "
        "time_ms, id",
        (int(image_id),),
    ):
        faces.setdefault(track_id, []).append(face_id)
    for row in rows:
        row["face_ids"] = faces.get(row["id"], [])
    return rows


def media(catalog: Catalog, image_id: int) -> dict:
    """What kind of media record an image is, with a video's length and completeness."""
    row = catalog.conn.execute(
        "SELECT kind, duration_ms, segments, complete FROM images WHERE id = ?", (int(image_id),)
    ).fetchone()
    if row is None:
        return {"kind": "photo", "duration_ms": None, "segments": None, "complete": True}
    return {"kind": row[0], "duration_ms": row[1], "segments": row[2], "complete": bool(row[3])}


def drop_empty_tracks(catalog: Catalog) -> int:
    """Delete tracks left without a face (their faces erased)."""
    with catalog.transaction():
        return catalog.conn.execute(
            "DELETE FROM tracks WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.track_id = "
            "tracks.id)"
        ).rowcount


def stats(catalog: Catalog) -> dict[str, int]:
    row = catalog.conn.execute(
        "SELECT (SELECT COUNT(*) FROM images WHERE kind = 'video'), "
        "(SELECT COALESCE(SUM(duration_ms), 0) FROM images WHERE kind = 'video'), "
        "(SELECT COUNT(*) FROM tracks)"
    ).fetchone()
    return {"videos": int(row[0]), "video_seconds": int(row[1]) // 1000, "tracks": int(row[2])}
