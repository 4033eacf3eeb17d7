"""Fault injection for crash tests: SIGKILL at the Nth pass of a named stage.

`FACESEARCH_FAULT_KILL_AT=STAGE:N` (for example `index_write:3`) makes the process
kill itself with SIGKILL the Nth time it passes `point(STAGE)`. Unset, `point` does
nothing but one dictionary lookup. The stages:

- `decode`          an image was decoded (before detection)
- `embed`           a batch of faces was embedded (before its results leave the worker)
- `catalog_commit`  a batch's rows are written inside its transaction, not yet committed
- `index_write`     the vectors of a batch are appended but not their ids, or a new
                    index manifest is written but not yet renamed over the old one

It is an environment variable, read once per process, rather than a setting passed
down, because the stages live in worker processes and in the index's file layer,
which no `Settings` reaches; spawned workers inherit the variable. Crash tests
need it to prove *where* a kill landed, which a kill at a random time cannot.

Before dying it writes one line, `fault injection: SIGKILL at STAGE pass N (…)`, to
stderr. What it kills: where the process (or, for an ingest worker, its parent)
leads its own session, as a service manager or a test starts it, the whole process
group, so an ingest and its worker processes die together as with `kill -9 -PGID`;
anywhere else the process itself and the process that armed it (the first to
import this module with the variable set: a server whose ingest job runs in a child
process dies with it, as in a crash), so that it can never reach a shell or a test
runner that happens to share its group.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import sys

ENV = "FACESEARCH_FAULT_KILL_AT"
STAGES = ("decode", "embed", "catalog_commit", "index_write")

ROOT_ENV = "FACESEARCH_FAULT_ROOT_PID"
if os.environ.get(ENV) and ROOT_ENV not in os.environ:
    os.environ[ROOT_ENV] = str(os.getpid())  # inherited by the processes it starts

_passes: dict[str, int] = {}


@functools.cache
def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    stage, _, count = spec.partition(":")
    if stage not in STAGES or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV} must be STAGE:N with STAGE one of {', '.join(STAGES)}")
    return stage, int(count)


def point(stage: str, where: str = "") -> None:
    """A place where a crash test may kill this process; `where` says what is half done."""
    armed = _armed()
    if armed is None or armed[0] != stage:
        return
    _passes[stage] = _passes.get(stage, 0) + 1
    if _passes[stage] != armed[1]:
        return
    detail = f" ({where})" if where else ""
    sys.stderr.write(f"fault injection: SIGKILL at {stage} pass {_passes[stage]}{detail}\n")
    sys.stderr.flush()
    if _leads_its_group():
        os.killpg(os.getpgrp(), signal.SIGKILL)
    root = int(os.environ.get(ROOT_ENV) or 0)
    if root and root != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(root, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _leads_its_group() -> bool:
    """Whether this process, or the process whose worker it is, leads its own session."""
    session = os.getsid(0)
    if os.getpgrp() != session:
        return False
    if session == os.getpid():
        return True
    # A worker process of a pool (multiprocessing) whose parent leads the session.
    return multiprocessing.parent_process() is not None and session == os.getppid()
