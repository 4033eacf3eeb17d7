"""Video files → the frames worth analysing, with their moments.

PyAV (FFmpeg) demuxes and decodes mp4, mov, mkv, webm and avi. `probe` reads a file's
header and checks it against the limits of `VideoSettings` before any frame is decoded,
then checks that the stream really ends where the container says it does. `sample` yields
the frames of one segment: one on a fixed grid of `sample_fps` a second, plus the first
frame of each scene cut, upright per the rotation metadata. Samples far apart are
reached by seeking to the keyframe before each, so a sparse sampling decodes little.

Every refusal is a `VideoRejected` whose message says what is wrong with the file, and
decoding runs under a time budget, so no file can hang an ingest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ..config import VideoSettings
from ..errors import VideoRejected

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
# Codecs decoded here; others are refused by name rather than half-decoded.
DECODABLE = {
    "h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4", "msmpeg4v2", "msmpeg4v3",
    "mpeg1video", "mpeg2video", "mjpeg", "theora", "h263", "prores", "dnxhd",
}  # fmt: skip
# The last packets read to find where a stream ends: a stream still going after this many
# packets past its declared end is endless (or lying).
END_PACKETS = 2000
# Bad packets skipped in a segment before the file is refused as corrupt.
MAX_BAD_PACKETS = 50
# What PyAV raises, beside FFmpeg's own errors, on a file damaged in its metadata or
# timestamps.
DAMAGE = (ValueError, OverflowError, ZeroDivisionError, UnicodeError, IndexError)
# Small copy of each frame compared for scene cuts.
CUT_SIZE = (64, 36)
# A scene-cut frame this close to a grid sample is not sampled twice.
MIN_EXTRA_GAP_MS = 250.0


@dataclass(frozen=True)
class VideoInfo:
    duration_ms: int
    width: int  # upright, after rotation
    height: int
    fps: float
    codec: str
    container: str
    rotation: int  # degrees counterclockwise the stored frames are turned to show them
    created_at: str | None  # the container's creation time as ISO 8601 (UTC), if any


@dataclass(frozen=True)
class SampledFrame:
    time_ms: int  # from the start of the video
    pixels: np.ndarray  # H x W x 3 BGR, upright
    shot: int  # shot number within the segment; a scene cut starts the next
    cut: bool  # sampled because a scene cut starts here


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def probe(path: Path, settings: VideoSettings) -> VideoInfo:
    """The video's header, checked against the limits, and its true end checked."""
    _check_file(path, settings)
    deadline = time.monotonic() + settings.budget_base_s
    container = _open(path)
    try:
        stream = _video_stream(container)
        rotation = _first_rotation(container, stream, deadline)
        info = _info(container, stream, settings, rotation)
        _check_end(container, stream, info, deadline)
        return info
    except DAMAGE as exc:
        raise VideoRejected(f"corrupt video: {type(exc).__name__}: {exc}") from None
    finally:
        container.close()


def segments(info: VideoInfo, settings: VideoSettings) -> list[tuple[int, int]]:
    """[start, end) in milliseconds of each segment processed and stored on its own."""
    step = int(settings.segment_s * 1000)
    return [(s, min(s + step, info.duration_ms)) for s in range(0, max(info.duration_ms, 1), step)]


def sample(
    path: Path, settings: VideoSettings, start_ms: int, end_ms: int, stats: dict | None = None
) -> Iterator[SampledFrame]:
    """The sampled frames with start_ms <= time < end_ms, in order. `stats`, when given,
    gets the count of frames decoded ("decoded") and of seeks ("seeks")."""
    budget = settings.budget_base_s + settings.budget_per_video_s * (end_ms - start_ms) / 1000
    deadline = time.monotonic() + budget
    container = _open(path)
    try:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        sampler = _Sampler(container, stream, settings, start_ms, end_ms, deadline)
        sampler.stats = stats if stats is not None else {}
        yield from sampler.run()
    except DAMAGE as exc:
        raise VideoRejected(f"corrupt video: {type(exc).__name__}: {exc}") from None
    finally:
        container.close()


class _Sampler:
    def __init__(self, container, stream, settings: VideoSettings, start_ms: int, end_ms: int,
                 deadline: float) -> None:  # fmt: skip
        self.container, self.stream, self.settings = container, stream, settings
        self.start_ms, self.end_ms, self.deadline = start_ms, end_ms, deadline
        self.step_ms = 1000.0 / settings.sample_fps
        self.origin = _start_seconds(stream)
        self.bad_packets = 0
        self.stats: dict = {}

    def run(self) -> Iterator[SampledFrame]:
        grid = math.ceil(self.start_ms / self.step_ms - 1e-9)  # next grid sample's number
        shot, previous_small, last_taken, last_time = 0, None, -1e18, -1e18
        sparse = self.step_ms / 1000 > self.settings.seek_gap_s
        frames = self._frames(self.start_ms)
        while True:
            frame = next(frames, None)
            if frame is None:
                return
            t = (float(frame.pts * frame.time_base) - self.origin) * 1000 if frame.pts is not None \
                else last_time + self.step_ms  # fmt: skip
            if t < last_time - 1000:
                raise VideoRejected(
                    f"timestamps go back from {last_time / 1000:.1f} s to {t / 1000:.1f} s "
                    "(a looping or spliced stream)"
                )
            last_time = max(last_time, t)
            if t < self.start_ms - 0.5:
                continue
            if t >= self.end_ms:
                return
            _check_frame(frame, self.settings)
            small = _small_copy(frame)
            cut = previous_small is not None and _difference(small, previous_small) > (
                self.settings.scene_cut_threshold
            )
            previous_small = small
            if cut:
                shot += 1
            due = t >= grid * self.step_ms - 0.5
            extra = cut and t - last_taken >= MIN_EXTRA_GAP_MS
            if not (due or extra):
                continue
            last_taken = t
            while grid * self.step_ms - 0.5 <= t:
                grid += 1
            yield SampledFrame(round(t), _upright(frame), shot, cut and not due)
            target = grid * self.step_ms
            if sparse and target < self.end_ms and target - t > self.settings.seek_gap_s * 1000:
                # What lies between is not seen: the next sample starts a new shot.
                frames.close()
                frames = self._frames(int(target))
                previous_small, shot = None, shot + 1

    def _frames(self, from_ms: float) -> Iterator:
        """Decoded frames from the keyframe at or before `from_ms`, bad packets skipped."""
        import av

        self.stats["decoded"] = self.stats.get("decoded", 0)
        if from_ms > 0:
            self.stats["seeks"] = self.stats.get("seeks", 0) + 1
            target = int((from_ms / 1000 + self.origin) / self.stream.time_base)
            try:
                self.container.seek(target, stream=self.stream, backward=True)
            except av.error.FFmpegError as exc:
                raise VideoRejected(f"corrupt or truncated video: cannot seek: {exc}") from None
        try:
            for packet in self.container.demux(self.stream):
                if time.monotonic() > self.deadline:
                    raise VideoRejected(
                        "decoding took longer than its time budget; the file makes the decoder "
                        "work too hard"
                    )
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    self.bad_packets += 1
                    if self.bad_packets > MAX_BAD_PACKETS:
                        raise VideoRejected(
                            f"corrupt video: more than {MAX_BAD_PACKETS} packets cannot be decoded"
                        ) from None
                    continue
                self.stats["decoded"] += len(decoded)
                yield from decoded
        except av.error.FFmpegError as exc:
            raise VideoRejected(f"corrupt or truncated video: {_reason(exc)}") from None


def _check_file(path: Path, settings: VideoSettings) -> None:
    try:
        stat = path.stat()
    except OSError as exc:
        raise VideoRejected(f"cannot read file: {exc.strerror or exc}") from None
    if not path.is_file():  # a pipe or device would stream for ever
        raise VideoRejected("not a regular file (a pipe or device is an endless stream)")
    if stat.st_size == 0:
        raise VideoRejected("empty file (0 bytes)")
    if stat.st_size > settings.max_bytes:
        raise VideoRejected(
            f"file is {stat.st_size:,} bytes, above the video limit of {settings.max_bytes:,}"
        )


def _open(path: Path):
    import av

    try:
        # Whole-file probing of a hostile file is bounded: 5 s of stream, 5 MB read.
        return av.open(
            str(path), "r", options={"analyzeduration": "5000000", "probesize": "5000000"},
            timeout=30.0, metadata_errors="replace",
        )  # fmt: skip
    except (av.error.FFmpegError, *DAMAGE) as exc:
        raise VideoRejected(
            f"not a video in a supported container, or corrupt or truncated: {_reason(exc)}"
        ) from None


def _video_stream(container):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        what = "an audio-only file" if kinds == ["audio"] else f"streams: {', '.join(kinds)}"
        raise VideoRejected(f"no video stream ({what or 'none'})")
    stream = container.streams.video[0]
    codec = stream.codec_context.name if stream.codec_context else None
    if codec not in DECODABLE:
        raise VideoRejected(f"unsupported video codec {codec or 'unknown'}")
    return stream


def _info(container, stream, settings: VideoSettings, rotation: int) -> VideoInfo:
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width < 1 or height < 1:
        raise VideoRejected(f"video has no pixels ({width}x{height})")
    if width * height > settings.max_pixels:
        raise VideoRejected(
            f"video frames are {width}x{height} = {width * height / 1e6:.1f} megapixels, above "
            f"the limit of {settings.max_pixels / 1e6:.1f}"
        )
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if fps > settings.max_fps:
        raise VideoRejected(f"frame rate {fps:.0f} fps is above the limit of {settings.max_fps:g}")
    duration = _declared_seconds(container, stream)
    if duration is None:
        raise VideoRejected(
            "the container declares no duration (a live or endless stream); remux it into a "
            "file first"
        )
    if duration > settings.max_duration_s:
        raise VideoRejected(
            f"video is {duration:,.0f} s long, above the limit of {settings.max_duration_s:,.0f} s"
        )
    if duration <= 0:
        raise VideoRejected("zero-frame video stream")
    if rotation % 180:
        width, height = height, width
    return VideoInfo(
        duration_ms=round(duration * 1000), width=width, height=height, fps=round(fps, 3),
        codec=ctx.name, container=container.format.name, rotation=rotation,
        created_at=_created_at(container.metadata),
    )  # fmt: skip


def _declared_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000 - max(_start_seconds(stream), 0.0)
    return None


def _start_seconds(stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _check_end(container, stream, info: VideoInfo, deadline: float) -> None:
    """Refuse a file that ends well before its declared duration (truncated, or lying) or
    goes on far past it (endless, looping, or lying the other way)."""
    import av

    declared = info.duration_ms / 1000
    origin = _start_seconds(stream)
    tolerance = max(1.0, 0.05 * declared)
    try:
        if declared > 3:
            target = int((declared - 2 + origin) / stream.time_base)
            container.seek(target, stream=stream, backward=True)
        last, frames, count = None, 0, 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            if time.monotonic() > deadline:
                raise VideoRejected("reading the file took longer than its time budget")
            if packet.pts is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
                last = end if last is None else max(last, end)
                if last > declared + tolerance and count > END_PACKETS:
                    raise VideoRejected(
                        f"the stream goes on past the {declared:.1f} s its container declares "
                        "(an endless or looping stream, or a lying header)"
                    )
            frames += 1
    except av.error.FFmpegError as exc:
        raise VideoRejected(f"corrupt or truncated video: {_reason(exc)}") from None
    if frames == 0 or last is None:
        raise VideoRejected("zero-frame video stream: no frame could be read")
    if last < declared - tolerance:
        raise VideoRejected(
            f"truncated video, or its container lies about its length: it declares "
            f"{declared:.1f} s but the frames end at {last:.1f} s"
        )
    if last > declared + tolerance:
        raise VideoRejected(
            f"the frames go on to {last:.1f} s, past the {declared:.1f} s its container declares"
        )


def _check_frame(frame, settings: VideoSettings) -> None:
    if frame.width * frame.height > settings.max_pixels:
        raise VideoRejected(
            f"a frame is {frame.width}x{frame.height}, above the limit of "
            f"{settings.max_pixels / 1e6:.1f} megapixels"
        )


def _small_copy(frame) -> np.ndarray:
    # In colour: two shots can be alike in brightness alone. Every decoded frame is shrunk
    # here, so the fast filter: swscale's default bilinear cost more than decoding a 720p
    # H.264 frame (1.5 ms against 1.1 ms, bench/video.py's clips).
    small = frame.reformat(
        width=CUT_SIZE[0], height=CUT_SIZE[1], format="rgb24", interpolation="FAST_BILINEAR"
    )
    return small.to_ndarray().astype(np.int16)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def _upright(frame) -> np.ndarray:
    pixels = frame.to_ndarray(format="bgr24")
    turns = (round(frame.rotation or 0) // 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def _first_rotation(container, stream, deadline: float) -> int:
    """The display rotation (degrees counterclockwise) FFmpeg attaches to the first frame
    from the container's display matrix; 0 when there is none."""
    import av

    try:
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                raise VideoRejected("reading the file took longer than its time budget")
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in frames:
                return round(frame.rotation or 0) % 360
    except av.error.FFmpegError as exc:
        raise VideoRejected(f"corrupt or truncated video: {_reason(exc)}") from None
    raise VideoRejected(
        "zero-frame video stream, or truncated before its first frame: no frame could be decoded"
    )


def _created_at(metadata: dict) -> str | None:
    value = (metadata or {}).get("creation_time")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < 1971:  # 1904 or 1970: the epoch of a camera with no clock set
        return None
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0]


def time_text(ms: int) -> str:
    """A moment as hh:mm:ss.mmm."""
    ms = max(int(ms), 0)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
