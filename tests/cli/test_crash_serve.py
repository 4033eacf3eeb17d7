"""`facesearch serve` killed with SIGKILL again and again while an ingest job runs: each
start resumes the job, the last one finishes it, and the store is what an uninterrupted
ingest makes, with its index and audit log whole.

Every start but the last carries a fault (facesearch/faults.py) at a pass of a named
stage, chosen from a printed seed (FACESEARCH_CRASH_SEED reruns it); one kill more comes
from outside at a random moment of the job.
"""

from __future__ import annotations

import collections
import json
import os
import random
import secrets
import time

import httpx
import pytest
from crashkit import FAULT_LINE, assert_store_intact, lfw_folder, snapshot, stored_images
from server import Server, first_login

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.faults import ENV as FAULT_ENV
from facesearch.faults import STAGES

KILLS_PER_STAGE = 2
PASSES = {"decode": (2, 8), "embed": (1, 2), "catalog_commit": (1, 3), "index_write": (1, 4)}
IMAGES = 120
PASSWORD = "correct horse battery staple"


def _wait(client: httpx.Client, job_id: int, until, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id}: {job}")


@pytest.mark.slow
def test_serve_resumes_a_job_after_sigkill_in_every_stage(tmp_path, cache_dir, lfw, analyzer):
    seed = int(os.environ.get("FACESEARCH_CRASH_SEED") or secrets.randbelow(2**31))
    print(f"crash plan seed {seed} (rerun it with FACESEARCH_CRASH_SEED={seed})")
    rng = random.Random(seed)
    folder = tmp_path / "in"
    readable = lfw_folder(lfw, folder, IMAGES, first_letters="D")
    reference = Settings(data_dir=tmp_path / "reference", cache_dir=cache_dir, workers=1)
    with Engine(reference, analyzer=analyzer) as engine:
        engine.create_collection("lfw", "LFW", "research")
        engine.ingest([folder], "lfw")
    expected = snapshot(reference.catalog_path)

    plan = [(s, rng.randint(*PASSES[s])) for s in STAGES for _ in range(KILLS_PER_STAGE)]
    rng.shuffle(plan)
    server = Server(tmp_path / "data", cache_dir, FACESEARCH_BATCH_IMAGES="4",
                    FACESEARCH_API__ALLOWED_ROOTS=json.dumps([str(tmp_path)]))  # fmt: skip
    # The first start: declare, submit the job, and kill the server from outside once a
    # random number of images is stored.
    with server:
        client = first_login(server, PASSWORD)
        declared = {"name": "lfw", "source": "LFW", "legal_basis": "research"}
        assert client.post("/api/collections", json=declared).status_code == 201
        job = client.post("/api/jobs", json={"collection": "lfw", "paths": [str(folder)]})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        wanted = rng.randint(4, 16)
        _wait(client, job_id, lambda _: stored_images(server.data_dir / "catalog.sqlite3")
              >= wanted)  # fmt: skip
        time.sleep(rng.uniform(0, 0.2))
        server.kill()
    landed = collections.Counter({"outside": 1})

    # Each later start resumes the job on its own and dies at its fault.
    for n, (stage, passes) in enumerate(plan):
        before = stored_images(server.data_dir / "catalog.sqlite3")
        server.env[FAULT_ENV] = f"{stage}:{passes}"
        server.spawn()
        code = server.wait_exit(timeout=120)
        output = "".join(server.output)
        found = FAULT_LINE.search(output)
        context = f"seed {seed}, kill {n}: {stage} {passes}"
        assert code == -9 and found and found.group(1) == stage, f"{context}: {code}\n{output}"
        assert before < IMAGES, f"{context}: the job was done before this kill"
        landed[stage] += 1

    server.env.pop(FAULT_ENV)
    with server:
        client = httpx.Client(base_url=server.url, timeout=60)
        login = {"username": "admin", "password": PASSWORD}
        assert client.post("/api/auth/login", json=login).status_code == 200
        done = _wait(client, job_id, lambda j: j["status"] not in ("queued", "running"))
    assert (done["status"], done["total"], done["done"], done["errors"]) == (
        "finished", IMAGES + 4, IMAGES + 4, 4,
    ), done  # fmt: skip
    counts = assert_store_intact(server.data_dir, cache_dir, expected, readable)
    # What the job says it stored is what it stored, though kills cut its progress short.
    assert (done["images"], done["faces"]) == (counts["images"], counts["faces"]), done
    print(f"server kills survived per stage: {dict(landed)}; {counts}")
    assert all(landed[s] == KILLS_PER_STAGE for s in STAGES)
