"""`facesearch ingest` killed with SIGKILL again and again, then finished: nothing lost,
nothing stored twice, the index and the audit log whole.

Each run is killed by the fault injection of facesearch/faults.py at a pass of a named
stage (decode, embed, catalog commit, index write) chosen at random, which proves where
the kill landed; a few more runs are killed from outside at a random moment while they
store. The plan comes from a seed that is printed (FACESEARCH_CRASH_SEED reruns it).
"""

from __future__ import annotations

import collections
import os
import random
import secrets

import pytest
from crashkit import (
    assert_store_intact,
    create_collection,
    kill_while_storing,
    lfw_folder,
    run_ingest,
    snapshot,
)

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.faults import STAGES

KILLS_PER_STAGE = 5
OUTSIDE_KILLS = 3
# Passes at which a stage's fault fires (batches of 4 images): early enough that each run
# stores at most a few batches before it dies.
PASSES = {"decode": (1, 8), "embed": (1, 2), "catalog_commit": (1, 3), "index_write": (1, 2)}
IMAGES = 240


@pytest.mark.slow
def test_ingest_survives_sigkill_in_every_stage(lfw, tmp_path, cache_dir, analyzer):
    seed = int(os.environ.get("FACESEARCH_CRASH_SEED") or secrets.randbelow(2**31))
    print(f"crash plan seed {seed} (rerun it with FACESEARCH_CRASH_SEED={seed})")
    rng = random.Random(seed)
    folder = tmp_path / "in"
    readable = lfw_folder(lfw, folder, IMAGES)

    reference = Settings(data_dir=tmp_path / "reference", cache_dir=cache_dir, workers=1)
    with Engine(reference, analyzer=analyzer) as engine:
        engine.create_collection("c", "LFW", "test")
        engine.ingest([folder], "c")
    expected = snapshot(reference.catalog_path)

    data_dir = tmp_path / "killed"
    create_collection(data_dir, cache_dir)
    plan = [(stage, _passes(stage, k, rng)) for stage in STAGES
            for k in range(KILLS_PER_STAGE)] + [("outside", 0)] * OUTSIDE_KILLS  # fmt: skip
    rng.shuffle(plan)
    landed: collections.Counter[str] = collections.Counter()
    details: collections.Counter[str] = collections.Counter()
    for n, (stage, passes) in enumerate(plan):
        # One run in five with two worker processes: decode and embed die in a worker,
        # which takes its parent and sibling with it.
        workers = 2 if rng.random() < 0.2 else 1
        context = f"seed {seed}, kill {n}: {stage} {passes}, {workers} workers"
        if stage == "outside":
            outcome = kill_while_storing(
                data_dir, cache_dir, folder, "c", workers, rng.randint(1, 8), rng.uniform(0, 0.15)
            )
        else:
            outcome = run_ingest(data_dir, cache_dir, folder, "c", workers, f"{stage}:{passes}")
        assert outcome.returncode != 0, f"{context}: the ingest ran to its end before the kill"
        assert outcome.killed, f"{context}: exit {outcome.returncode}\n{outcome.stderr[-3000:]}"
        assert outcome.stage == stage, f"{context}: died at {outcome.stage}\n{outcome.stderr}"
        landed[stage] += 1
        details[f"{stage}: {_kind(outcome.where)}"] += 1

    final = run_ingest(data_dir, cache_dir, folder, "c", workers=1)
    assert final.returncode == 0, f"seed {seed}: the last run failed\n{final.stderr[-3000:]}"
    counts = assert_store_intact(data_dir, cache_dir, expected, readable)
    print(f"kills survived per stage: {dict(landed)}; in detail {dict(details)}; {counts}")
    assert all(landed[s] == KILLS_PER_STAGE for s in STAGES) and sum(landed.values()) >= 20
    assert details["index_write: vectors appended"] >= 2
    assert details["index_write: written, not renamed"] >= 2


def _passes(stage: str, k: int, rng: random.Random) -> int:
    passes = rng.randint(*PASSES[stage])
    if stage != "index_write":
        return passes
    # The index writes twice per batch, its vectors (odd passes) then its manifest (even):
    # the kills alternate between the two.
    return 2 * passes - (k % 2)


def _kind(where: str) -> str:
    """What a fault's detail says was half done, without its numbers and file names."""
    for phrase in ("vectors appended", "written, not renamed", "not committed",
                   "not returned"):  # fmt: skip
        if phrase in where:
            return phrase
    return "image decoded" if where else "-"
