"""The evaluation embedding cache reads each stored array once.

An .npz file decompresses an array anew on every `npz[key]`; taking one row per
access kept a whole copy of the array alive per row, so memory grew with the square
of the cache size (about 20 GB for an 8,680-row dlib cache, killed by the kernel).
"""

from pathlib import Path

import numpy as np

from facesearch.evaluation.embeddings import EmbeddingCache


def test_reloaded_rows_share_one_array_per_column(tmp_path: Path):
    path = tmp_path / "cache.npz"
    rng = np.random.default_rng(0)
    cache = EmbeddingCache(path, dim=8)
    for i in range(300):
        plain, mirrored = rng.normal(size=(2, 8)).astype(np.float32)
        cache.rows[f"{i:064x}"] = (True, 0.5, 0.9, plain, mirrored)
        cache.dirty += 1
    cache.save()

    again = EmbeddingCache(path, dim=8)
    assert len(again.rows) == 300
    assert np.array_equal(again.rows[f"{7:064x}"][3], cache.rows[f"{7:064x}"][3])
    for column in (3, 4):
        owners = {id(row[column].base) for row in again.rows.values()}
        # One decompressed array behind all 300 rows, not one array per row.
        assert len(owners) == 1
        (owner,) = {row[column].base.nbytes for row in again.rows.values()}
        assert owner == 300 * 8 * 4
