"""Shared fixtures: the real data folder, the real models, a fresh catalog.

Tests that need ../shared/data skip with a reason where it is absent. Models
are fetched once into the user's cache (or FACESEARCH_CACHE_DIR) and verified.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.pipeline.analyze import Analyzer

# The service's fixtures (a running app with an account per role) live beside this file.
pytest_plugins = ("apiworld", "postgres")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
# Two test workers share the cores: a server's ingest job at its default niceness (19)
# would wait on the other worker's tests and could run past a test's timeout. Priority is
# measured in bench/serving.py, not here.
os.environ.setdefault("FACESEARCH_JOBS__NICE", "0")
# Subprocesses started by tests import this checkout's code, not another install.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
)


def data_path(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data {path} is absent (set FACESEARCH_DATA to ../shared/data)")
    return path


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Settings().cache_dir


@pytest.fixture
def settings(tmp_path: Path, cache_dir: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=cache_dir, workers=1)


@pytest.fixture(scope="session")
def analyzer(cache_dir: Path) -> Analyzer:
    return Analyzer.load(Settings(cache_dir=cache_dir))


@pytest.fixture
def engine(settings: Settings, analyzer: Analyzer):
    with Engine(settings, analyzer=analyzer) as engine:
        yield engine


@pytest.fixture(scope="session")
def lfw() -> Path:
    return data_path("lfw", "images_deepfunneled")


@pytest.fixture(scope="session")
def wild() -> Path:
    return data_path("wild")


def lfw_people(lfw: Path, min_images: int, count: int) -> dict[str, list[Path]]:
    """The first `count` people (by name) with at least `min_images` images."""
    people = {}
    for folder in sorted(p for p in lfw.iterdir() if p.is_dir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= min_images:
            people[folder.name] = images
            if len(people) == count:
                break
    return people


def lfw_gallery(
    lfw: Path, folder: Path, people: int = 20, per_person: int = 9
) -> tuple[Path, dict[str, Path]]:
    """A captioned gallery manifest of LFW people with 5+ images, each one's last held out.

    Returns (manifest, {person: held-out probe}): the identification check that the
    local pipeline and every back end must pass.
    """
    manifest = folder / "gallery.csv"
    probes = {}
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption"])
        for name, images in lfw_people(lfw, min_images=5, count=people).items():
            probes[name] = images[-1]
            for image in images[:-1][:per_person]:
                writer.writerow([image, name])
    return manifest, probes


@pytest.fixture(scope="session")
def lfw_embeddings(lfw: Path, analyzer: Analyzer, tmp_path_factory, worker_id: str):
    """(vectors, person labels) of the largest face of the first 1500 LFW images.

    Computed once per test session: pytest-xdist workers share the file under a lock.
    """
    import fcntl

    import numpy as np

    from facesearch.pipeline.decode import decode

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    target = shared / "lfw_embeddings.npz"
    with (shared / "lfw_embeddings.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            vectors, labels = [], []
            for path in sorted(lfw.glob("*/*.jpg"))[:1500]:
                faces = analyzer.faces(decode(path.read_bytes(), analyzer.settings.decode).pixels)
                if faces:
                    vectors.append(max(faces, key=lambda f: f.detection.area).embedding)
                    labels.append(path.parent.name)
            np.savez(shared / "partial.npz", vectors=np.stack(vectors), labels=np.array(labels))
            (shared / "partial.npz").rename(target)
    with np.load(target) as data:
        return data["vectors"].astype(np.float32), data["labels"]
