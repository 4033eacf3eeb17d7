"""Typed settings, read from FACESEARCH_* environment variables.

Entry points build one `Settings` and pass it down; nothing reads the
environment in the middle of a call.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir
from pydantic import BaseModel, Field
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


class DecodeSettings(BaseModel):
    max_pixels: int = Field(120_000_000, ge=1)
    max_bytes: int = Field(200 * 1024 * 1024, ge=1)


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACESEARCH_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("facesearch")))
    cache_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("facesearch")))
    detector: str = "yunet-2023mar"
    embedder: str = "sface-2021dec"
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0)
    batch_images: int = Field(16, ge=1)
    thumbnail_px: int = Field(96, ge=16, le=512)
    detect: DetectSettings = DetectSettings()
    decode: DecodeSettings = DecodeSettings()
    index: IndexSettings = IndexSettings()

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.sqlite3"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
