"""Shared fixtures: the real data folder, the real models, a fresh catalog.

Tests that need ../shared/data skip with a reason where it is absent. Models
are fetched once into the user's cache (or FACESEARCH_CACHE_DIR) and verified.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.pipeline.analyze import Analyzer

# The service's fixtures (a running app with an account per role) live beside this file.
pytest_plugins = ("apiworld",)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
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
