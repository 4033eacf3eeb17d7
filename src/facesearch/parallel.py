"""Worker processes with a bounded amount of work in flight.

Used by ingest and by evaluation: tasks are submitted as results are consumed,
so memory stays flat however many tasks there are, and results are handed to
the caller (who owns the database) in the parent process.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any


def die_with_parent() -> None:
    """Linux: this process is killed when the thread that started it ends, so a parent
    killed with SIGKILL leaves no worker behind holding memory (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def _start_worker(initializer: Callable[..., None], *initargs) -> None:
    die_with_parent()
    initializer(*initargs)


def run_bounded(
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    task: Callable[[Any], Any],
    items: Iterable[Any],
    consume: Callable[[Any], None],
) -> None:
    """Run `task(item)` for every item in `workers` spawned processes, at most two
    tasks per worker in flight, passing each result to `consume` as it arrives."""
    window = workers * 2
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_start_worker,
        initargs=(initializer, *initargs),
    ) as pool:  # fmt: skip
        pending: set[Future] = set()
        try:
            for item in items:
                pending.add(pool.submit(task, item))
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        consume(future.result())
            for future in pending:
                consume(future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
