"""A process that keeps changing a catalog and its vector index until it is killed.

Run by tests/integration/test_index_engine.py, which kills it with SIGKILL at
random moments: stores batches of faces (real embeddings), deletes some,
compacts the index now and then. Usage: index_crash_child.py DATA_DIR VECTORS.npy SEED
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import numpy as np

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.errors import FacesearchError
from facesearch.models.registry import get as get_model
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem


def main(data_dir: Path, vectors_path: Path, seed: int) -> None:
    vectors = np.load(vectors_path)
    rng = np.random.default_rng(seed)
    spec = get_model(Settings().embedder)
    with Engine(Settings(data_dir=data_dir, workers=1)) as engine:
        with contextlib.suppress(FacesearchError):
            engine.create_collection("crash", "crash test", "test")
        collection = engine.catalog.collection("crash")
        run = engine.catalog.start_run(collection, ["crash"])
        for step in range(10**9):
            results = []
            for n in range(int(rng.integers(1, 8))):
                name = f"{seed}-{step}-{n}"
                face = FaceRecord(
                    Detection((0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9),
                    vectors[rng.integers(len(vectors))],
                    0.5,
                    b"\xff\xd8",
                )
                results.append(ImageResult(SourceItem(Path(name)),
                                           hashlib.sha256(name.encode()).hexdigest(), 1,
                                           10, 10, [face]))  # fmt: skip
            engine.catalog.store_results(collection, run, results, spec.name, spec.version)
            engine.vector_index().sync(engine.catalog)
            if step == 0:
                # The parent's random kill time starts from here, not from the start of a
                # process that may take seconds to import on a loaded machine.
                print("ready", flush=True)
            if step % 5 == 4:
                stored = engine.catalog.model_face_ids(spec.name, spec.version)
                engine.delete_faces(list(rng.choice(stored, min(3, len(stored)), replace=False)))
            if step % 40 == 39:
                engine.compact_index()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
