"""Typed settings, read from FACESEARCH_* environment variables.

Entry points build one `Settings` and pass it down; nothing reads the
environment in the middle of a call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DetectSettings(BaseModel):
    score_threshold: float = Field(0.7, ge=0.0, le=1.0)
    nms_threshold: float = Field(0.3, ge=0.0, le=1.0)
    # Faces narrower than this, in full-resolution pixels, are too small to
    # identify anyone reliably.
    min_face_px: int = Field(24, ge=1)
    # Detection runs on a copy whose longer side is at most this; crops come
    # from full resolution.
    max_side: int = Field(1280, ge=160)
    top_k: int = Field(500, ge=1)


class DeclaredModel(BaseModel):
    """An operator's own recogniser: an ONNX file they hold a licence for (for example a
    non-commercial ArcFace pack), used where it lies and never downloaded."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    path: Path
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # The licence text (or its name and where the full text is), shown by
    # `facesearch models list`; required, since the operator vouches for it.
    licence: str = Field(min_length=1)
    embedding_dim: int = Field(ge=2)
    version: str = "declared"
    crop_size: int = Field(112, ge=32, le=512)
    colour: Literal["RGB", "BGR"] = "RGB"
    # insightface's ArcFace models take (x - 127.5) / 127.5; SFace takes 0..255.
    mean: float = 127.5
    scale: float = 1 / 127.5
    runtime: Literal["onnxruntime", "opencv"] = "onnxruntime"
    # A calibration fitted with `facesearch eval calibrate` (bands for search results).
    calibration: Path | None = None


class DecodeSettings(BaseModel):
    max_pixels: int = Field(120_000_000, ge=1)
    max_bytes: int = Field(200 * 1024 * 1024, ge=1)


class VideoSettings(BaseModel):
    """Video files: how densely they are sampled, how faces are tracked, and the limits
    past which a file is refused (each a clear per-file error)."""

    # Frames sampled per second of video, on a fixed grid; a scene cut adds its first frame.
    sample_fps: float = Field(2.0, gt=0, le=30)
    # Mean absolute difference (0-255) of two consecutive decoded frames' small colour copies
    # above which a new shot starts.
    scene_cut_threshold: float = Field(30.0, gt=0, le=255)
    # Samples further apart than this are reached by seeking to the keyframe before
    # each one instead of decoding every frame between them.
    seek_gap_s: float = Field(4.0, gt=0)
    # Long files are processed and stored in segments of this length, so a crash
    # resumes at the segment it stopped in.
    segment_s: float = Field(60.0, ge=1)
    # Faces kept per track: the best by quality, each with its moment.
    faces_per_track: int = Field(3, ge=1, le=50)
    # Faces are detected in each sampled frame on a copy at most this many pixels long
    # (crops still come from the full frame): 3.7 times cheaper than 1280 on a 720p frame
    # (bench/video.py), at the cost of faces under about 50 px wide in 1280-wide video.
    detect_max_side: int = Field(640, ge=160)
    # Tracking: a detection joins a track when its box overlaps the track's last box by
    # at least `track_iou`, or its embedding is at least `track_similarity` to the
    # track's; a track unseen for `track_gap_s` ends.
    track_iou: float = Field(0.3, ge=0, le=1)
    track_similarity: float = Field(0.5, ge=-1, le=1)
    track_gap_s: float = Field(1.5, gt=0)
    max_bytes: int = Field(8 * 1024**3, ge=1)
    max_duration_s: float = Field(4 * 3600.0, gt=0)
    max_pixels: int = Field(3840 * 2160, ge=1)  # per frame
    max_fps: float = Field(240.0, gt=0)
    # Decoding a segment may take this many seconds plus `budget_per_video_s` per second of
    # video in it; past that the file is refused, so no file can hang an ingest.
    budget_base_s: float = Field(30.0, gt=0)
    budget_per_video_s: float = Field(1.0, gt=0)


class ApiSettings(BaseModel):
    # Probe photos and uploads from browsers are far smaller than archive files.
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # An uploaded video file (mp4, mov, mkv, webm, avi); the video limits apply to it too.
    max_upload_video_bytes: int = Field(1024 * 1024 * 1024, ge=1)
    max_upload_pixels: int = Field(40_000_000, ge=1)
    max_upload_files: int = Field(500, ge=1)
    max_request_bytes: int = Field(1024 * 1024 * 1024, ge=1)
    session_hours: float = Field(12.0, gt=0)
    token_days: int = Field(90, ge=1)
    # Failed logins within the window that lock an account name, or a client address
    # (many names from one place), for `lockout_minutes`.
    login_max_failures: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_minutes: float = Field(15.0, gt=0)
    lockout_minutes: float = Field(15.0, gt=0)
    # Server-side folders and manifests may be ingested only from under these;
    # empty means uploads only.
    allowed_roots: list[Path] = Field(default_factory=list)
    # Set behind HTTPS so the session cookie is never sent in clear.
    secure_cookies: bool = False
    max_top_k: int = Field(200, ge=1)
    # Searches that run their models at once in one server process: each holds its own
    # detector and recogniser (OpenCV's nets are not safe to share between threads).
    search_models: int = Field(4, ge=1, le=64)


class IndexSettings(BaseModel):
    """The persistent vector index; the defaults are what bench/index.py measured."""

    # Below this many faces every search is exact (a scan of the memory-mapped
    # vectors); from it on an IVF index proposes candidates.
    approx_min_faces: int = Field(100_000, ge=1)
    # "auto" is IVF with about sqrt(n) lists and `codes`; or any FAISS IVF factory
    # string, such as "IVF4096,PQ32" or "IVF1024,SQ8".
    factory: str = "auto"
    # 4-bit PQ with 64 sub-quantisers (32 B per face), scanned with SIMD ("fast scan"):
    # as good a candidate ranking as 8-bit SQ on face-like vectors, six times faster.
    codes: str = "PQ64x4fs"
    # Lists probed per query; more is slower and finds more true neighbours. 0 probes a
    # quarter of the lists: face embeddings spread over many lists (see bench/results).
    nprobe: int = Field(0, ge=0)
    # Candidates re-ranked exactly against the full vectors: refine * k.
    refine: int = Field(50, ge=1)
    # A collection filter that keeps at most this many faces is searched exactly.
    filter_exact_max: int = Field(50_000, ge=0)
    # The back end (index/registry.py): "embedded" (files in the data folder), "milvus",
    # "flat" (exact, in RAM, refilled from the catalog at each start) or "auto":
    # milvus when `uri` is set, embedded otherwise.
    backend: str = Field("auto", pattern=r"^[a-z][a-z0-9_]*$")
    # Where the vectors live: unset keeps the embedded index in the data folder; a
    # Milvus URI (http://host:19530, https://… for TLS) uses that Milvus standalone
    # server or cluster instead (needs `pip install -e ".[milvus]"`).
    uri: str | None = None
    # "user:password" or an API key, for a Milvus with authentication switched on.
    milvus_token: SecretStr | None = None
    milvus_database: str = ""  # empty: Milvus's "default" database
    # Names of this installation's Milvus collections start with it, so several
    # installations can share one Milvus.
    milvus_prefix: str = Field("facesearch", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    milvus_index: str = Field("HNSW", pattern="^(FLAT|IVF_FLAT|IVF_SQ8|IVF_PQ|HNSW)$")
    # Replace the defaults of milvus.py (HNSW M=16 efConstruction=200; IVF nlist=1024,
    # IVF_PQ m=32 nbits=8; search ef=128 or nprobe=128), e.g. '{"M": 32}'.
    milvus_build_params: dict[str, int] = Field(default_factory=dict)
    milvus_search_params: dict[str, int] = Field(default_factory=dict)
    # Above 1, the facesearch collection id becomes Milvus's partition key, hashed into
    # that many partitions. 1 (a plain filtered field): with a partition key, Milvus
    # 2.3.5 returned wrong neighbours for collection filters (tests/integration/test_milvus.py).
    milvus_partitions: int = Field(1, ge=1, le=4096)
    # IVF_SQ8 and IVF_PQ scores are approximate: that many times k candidates come
    # back with their vectors and are re-ranked exactly.
    milvus_refine: int = Field(4, ge=1)
    milvus_timeout_s: float = Field(60.0, gt=0)
    # Searches wait for Milvus's next time tick (~200 ms) instead of relying on the
    # barrier after each write, which reaches one query replica (see milvus.py).
    milvus_strong_search: bool = False


DEFAULT_PURPOSES = [
    "criminal investigation",
    "missing person",
    "victim identification",
    "verification of published material",
    "data subject access request",
]


class GovernanceSettings(BaseModel):
    # Every search names one of these, a case reference and maybe an authorisation.
    purposes: list[str] = Field(default_factory=lambda: list(DEFAULT_PURPOSES))
    require_authorisation: bool = False
    # Where authorisation is required, a search may go ahead as "pending" in an
    # emergency; unless its authorisation is confirmed within this many hours,
    # its results (verification decisions) are purged and it cannot be followed up.
    # Unset: no pending searches.
    pending_authorisation_hours: float | None = Field(None, gt=0)
    # A verification decision counts only once a second person has confirmed it.
    second_confirmation: bool = False
    # An erased person's face is refused at ingest at or above this cosine
    # similarity: strict, well above SFace's 0.363 same-person threshold.
    blocklist_threshold: float = Field(0.5, ge=-1.0, le=1.0)
    # A data-subject access report lists stored faces at or above this score.
    access_threshold: float = Field(0.363, ge=-1.0, le=1.0)
    # How often the server purges collections whose retention has expired.
    retention_check_minutes: float = Field(60.0, gt=0)
    # Anomaly flags in the oversight views.
    working_hours: tuple[int, int] = (7, 20)  # local hours [start, end)
    volume_per_day: int = Field(50, ge=1)  # searches by one user in one day
    repeated_face: int = Field(3, ge=2)  # same probe hash searched this often


class CryptoSettings(BaseModel):
    # The master key wraps each collection's data key; it never enters the
    # catalog. Either a base64 key (env) or a key file; in local mode a key
    # file is generated in the data folder on first use.
    master_key: SecretStr | None = None
    key_file: Path | None = None
    # Signs every audit entry (HMAC-SHA256) when set; kept outside the catalog.
    audit_key: SecretStr | None = None


class JobSettings(BaseModel):
    """Ingest jobs of the server, where several servers share a PostgreSQL catalog."""

    # The server running a job renews its lease every third of this; a job whose lease
    # is this old (its server died or hangs) is taken over by another server, which
    # resumes it. Longer than any pause of a healthy server; the servers' clocks must
    # agree to well within it.
    lease_seconds: float = Field(30.0, ge=2)
    # The niceness of a server's ingest jobs (the process each runs in and its worker
    # processes): searches get the cores first, so an ingest cannot starve them. At 10
    # a search's p99 during an ingest was 4.4 times its idle value, at 19 2.3 times
    # (bench/serving.py), while the ingest kept 90% of its rate.
    nice: int = Field(19, ge=0, le=19)


class RaySettings(BaseModel):
    """Ingest on a Ray cluster: decode, detect and embed run in actors on its nodes,
    and this process stores what they return (the single writer of the catalog)."""

    # The head's "host:port" (what `ray start --head` printed), or "auto" for the
    # cluster this machine belongs to; empty runs ingest on this machine only.
    address: str = ""
    # This machine's address in the cluster. Unset, Ray finds it by routing towards
    # a public DNS server, which a machine without a default route cannot do.
    node_ip: str | None = None
    # Analysis actors; 0 is one per CPU of the cluster.
    workers: int = Field(0, ge=0)
    # CPUs each actor reserves. Below 1, so that the work of a node that dies can
    # start again on the nodes left even when their CPUs are all reserved.
    cpus_per_worker: float = Field(0.5, gt=0)
    # Times a batch is sent again after its actor or node died; past this the
    # ingest stops (and resumes when run again).
    max_retries: int = Field(3, ge=0)
    # Seconds to wait for the actors to load their models before giving up.
    start_timeout: float = Field(300.0, gt=0)


class PeopleSettings(BaseModel):
    """Grouping faces into persons (docs/people.md has the measurements behind these)."""

    # Cluster new faces into persons as each ingest batch commits.
    enabled: bool = True
    # "linkage" (measured best), "components", "whispers" or "core".
    algorithm: str = Field("linkage", pattern="^(linkage|components|whispers|core)$")
    # Two faces are linked at or above the recogniser's score at this false match rate
    # (its calibration), unless `threshold` sets the cosine similarity itself.
    edge_fmr: float = Field(1e-5, gt=0, lt=1)
    threshold: float | None = Field(None, ge=-1.0, le=1.0)
    # "linkage": two groups join only if their centroids score at least the recogniser's
    # score at this false match rate, unless `centroid_threshold` sets it.
    centroid_fmr: float = Field(1e-6, gt=0, lt=1)
    centroid_threshold: float | None = Field(None, ge=-1.0, le=1.0)
    neighbours: int = Field(20, ge=1, le=200)
    # A group becomes a person at this many faces; smaller ones wait, unassigned.
    min_faces: int = Field(2, ge=1)
    # Faces below this quality (0..1) are never grouped.
    quality_floor: float = Field(0.5, ge=0.0, le=1.0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACESEARCH_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("facesearch")))
    cache_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("facesearch")))
    detector: str = "yunet-2023mar"
    # The recogniser new faces are embedded with: a built-in model or a declared one.
    embedder: str = "sface-2021dec"
    # FACESEARCH_DECLARED_MODELS='[{"name": …, "path": …, "sha256": …, "licence": …,
    # "embedding_dim": 512}]': checked at start (sha256, graph, input shape).
    declared_models: list[DeclaredModel] = Field(default_factory=list)
    # Embed each face and its mirror image and average them: measured in MODEL_CARD.md;
    # it doubles the cost of the embedding step.
    flip_embeddings: bool = False
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    batch_images: int = Field(16, ge=1)
    thumbnail_px: int = Field(96, ge=16, le=512)
    detect: DetectSettings = DetectSettings()
    decode: DecodeSettings = DecodeSettings()
    video: VideoSettings = VideoSettings()
    api: ApiSettings = ApiSettings()
    governance: GovernanceSettings = GovernanceSettings()
    crypto: CryptoSettings = CryptoSettings()
    # "local" generates a master key on first use; "production" refuses to
    # start without one configured.
    mode: str = Field("local", pattern="^(local|production)$")
    index: IndexSettings = IndexSettings()
    ray: RaySettings = RaySettings()
    jobs: JobSettings = JobSettings()
    people: PeopleSettings = PeopleSettings()
    # A postgresql://user:password@host:port/database URL puts the catalog (and
    # accounts, jobs, audit log) on a PostgreSQL server that several nodes share;
    # unset, it is the SQLite file `catalog_path` in the data folder. A plain string,
    # not a secret, so that settings passed to worker processes keep it: leave the
    # password out and let libpq read it from ~/.pgpass or PGPASSWORD.
    database_url: str | None = None

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("FACESEARCH_DATABASE_URL must be a postgresql:// URL")
        return url

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite3"

    @property
    def catalog_location(self) -> Path | str:
        """The PostgreSQL URL when one is set, else the SQLite file."""
        return self.database_url or self.catalog_path

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def master_key_file(self) -> Path:
        return self.crypto.key_file or self.data_dir / "master.key"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


def settings_json(settings: Settings) -> str:
    """The settings as JSON, secrets included: for this user's own child processes
    (`serve --workers N`, ingest jobs), never for a file or a log."""

    def plain(value):
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(dict(settings.model_dump(mode="python"))), default=str)
