"""Real SFace embeddings of the LFW and UTKFace faces, for the index benchmark.

Each image contributes its largest face. LFW faces are labelled by person;
UTKFace faces each get an identity of their own (the set names no people).
The result is cached as an .npz (about 12 MB: not committed) and reused:

    python bench/embeddings.py --out /tmp/facesearch-bench/real_sface.npz
"""

from __future__ import annotations

import argparse
import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("/tmp/facesearch-bench/real_sface.npz")

_analyzer = None


def _init() -> None:
    import cv2

    from facesearch.config import Settings
    from facesearch.pipeline.analyze import Analyzer

    cv2.setNumThreads(1)
    global _analyzer
    _analyzer = Analyzer.load(Settings())


def _embed(path: str) -> np.ndarray | None:
    from facesearch.pipeline.decode import decode

    assert _analyzer is not None
    try:
        image = decode(Path(path).read_bytes(), _analyzer.settings.decode)
    except Exception:
        return None
    faces = _analyzer.faces(image.pixels)
    if not faces:
        return None
    return max(faces, key=lambda f: f.detection.area).embedding


def real_files(data: Path) -> tuple[list[Path], list[str]]:
    lfw = sorted((data / "lfw" / "images_deepfunneled").glob("*/*.jpg"))
    utk = sorted(p for p in (data / "utkface").rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    labels = [p.parent.name for p in lfw] + [f"utk:{p.name}" for p in utk]
    return lfw + utk, labels


def compute(data: Path, out: Path, workers: int) -> None:
    files, labels = real_files(data)
    with get_context("spawn").Pool(workers, initializer=_init) as pool:
        vectors = pool.map(_embed, [str(p) for p in files], chunksize=64)
    keep = [i for i, v in enumerate(vectors) if v is not None]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        vectors=np.stack([vectors[i] for i in keep]).astype(np.float32),
        labels=np.array([labels[i] for i in keep]),
        paths=np.array([str(files[i].relative_to(data)) for i in keep]),
    )
    print(f"{len(keep)} of {len(files)} images gave a face -> {out}")


def load(out: Path = DEFAULT_OUT) -> tuple[np.ndarray, np.ndarray]:
    with np.load(out) as f:
        return f["vectors"], f["labels"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    compute(args.data, args.out, args.workers)
