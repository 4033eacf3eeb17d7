"""Job leases and named leases on either back end: a job whose server died is taken
over once its lease expires (at once where that server was of this machine), a
running server's jobs are left alone, and a lost lease is never written over."""

from __future__ import annotations

import subprocess
import sys
import time

from postgres import open_catalog

from facesearch.store.db import Database
from facesearch.store.jobs import Jobs
from facesearch.store.leases import Leases, is_gone, this_process

ELSEWHERE = "another-host/4026531836/4242/abcd"  # a server of another machine


def _gone_process() -> str:
    """The holder name a process of this machine had; the process has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "from facesearch.store.leases import this_process as t; "
         "print(t())"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_a_job_is_taken_over_only_when_its_lease_expires(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        collection = catalog.create_collection("press", "s", "b")
    db = Database(catalog_location)
    try:
        jobs = Jobs(db)
        job = jobs.create(collection.id, None, "folder", ["/a"])
        assert jobs.claim(ELSEWHERE, 2) == (jobs.get(job.id), None)
        assert jobs.get(job.id).lease_holder == ELSEWHERE
        # Its server is alive elsewhere and renews: nobody takes the job.
        assert jobs.claim(this_process(), 30) is None
        assert jobs.expire_gone_holders() == []
        assert jobs.renew(job.id, ELSEWHERE, 2)
        assert not jobs.renew(job.id, this_process(), 30)
        time.sleep(3.1)  # past the lease, to the second
        taken, taken_from = jobs.claim(this_process(), 30)
        assert (taken.id, taken.status, taken_from) == (job.id, "running", ELSEWHERE)
        assert taken.lease_holder == this_process()
        # The old holder comes back: its lease is gone, and it writes nothing over.
        assert not jobs.renew(job.id, ELSEWHERE, 2)
        assert not jobs.finish(job.id, "finished", holder=ELSEWHERE)
        assert jobs.get(job.id).status == "running"
        assert jobs.finish(job.id, "finished", holder=this_process())
        assert jobs.get(job.id).lease_holder is None
    finally:
        db.close()


def test_a_dead_server_of_this_machine_gives_its_jobs_up_at_once(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        collection = catalog.create_collection("press", "s", "b")
    db = Database(catalog_location)
    try:
        jobs = Jobs(db)
        dead, alive = _gone_process(), this_process()
        assert is_gone(dead) and not is_gone(alive) and not is_gone(ELSEWHERE)
        other = jobs.create(collection.id, None, "folder", ["/a"]).id
        assert jobs.claim(ELSEWHERE, 600)[0].id == other
        own = jobs.create(collection.id, None, "folder", ["/b"]).id
        assert jobs.claim(dead, 600)[0].id == own
        # A (re)starting server resumes the dead one's job and leaves the other's running.
        assert jobs.expire_gone_holders() == [own]
        taken, taken_from = jobs.claim(alive, 30)
        assert (taken.id, taken_from) == (own, dead)
        assert jobs.claim(alive, 30) is None
        assert jobs.get(other).lease_holder == ELSEWHERE
    finally:
        db.close()


def test_a_named_lease_has_one_holder_at_a_time(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path):
        pass
    db = Database(catalog_location)
    try:
        leases = Leases(db)
        assert leases.acquire("retention-purge", ELSEWHERE, 2)
        assert not leases.acquire("retention-purge", this_process(), 30)
        assert leases.acquire("retention-purge", ELSEWHERE, 2)  # a renewal
        assert leases.holder("retention-purge") == ELSEWHERE
        time.sleep(3.1)
        assert leases.holder("retention-purge") is None
        assert leases.acquire("retention-purge", this_process(), 30)
        assert not leases.acquire("retention-purge", ELSEWHERE, 2)
        leases.release("retention-purge", this_process())
        dead = _gone_process()
        assert leases.acquire("retention-purge", dead, 600)
        assert leases.acquire("retention-purge", this_process(), 30)  # its holder is gone
    finally:
        db.close()
