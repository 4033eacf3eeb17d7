"""Ingest's analysis on a Ray cluster: a pool of actors, each loading the models once.

The driver (the process running `facesearch ingest --ray`) reads and hashes the
files, sends batches of bytes to the actors and stores every result itself, as
it does with local worker processes (parallel.py): the catalog and the vector
index are written by one process only. When an actor or its whole node dies,
each batch it held is sent to another actor and a replacement actor is
started; a batch's result is stored once, from the attempt that succeeded,
and the catalog's content-hash dedupe covers a driver that dies in turn.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import (
    GetTimeoutError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayActorError,
    WorkerCrashedError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import __version__
from .config import Settings
from .errors import FacesearchError
from .models.cache import ModelCache
from .models.registry import get as get_model
from .pipeline.analyze import Analyzer
from .pipeline.embed import Embedder
from .pipeline.video_analyze import SegmentResult, SegmentWork, analyze_work, work_size
from .types import ImageResult, SourceItem

# A batch of photos (their bytes), or one segment of a video, which the actor reads from
# its path: a video is too large to send, so its file must be where every node can read it.
Work = list[tuple[SourceItem, str, bytes]] | SegmentWork
Results = list[ImageResult] | SegmentResult

# Failures of the machinery rather than of our code: the batch goes to another actor.
# OutOfMemoryError: Ray's memory monitor killed the actor because its node ran short.
LOST = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError, OutOfMemoryError)

log = logging.getLogger(__name__)


@dataclass
class RayStats:
    images_by_node: dict[str, int] = field(default_factory=dict)
    resubmitted: int = 0  # batches sent again after their actor or node died
    replaced: int = 0  # actors started in place of dead ones
    devices: dict[str, int] = field(default_factory=dict)  # actors per device kind


class AnalyzerActor:
    """One analysis worker on a Ray node, with the models loaded once."""

    def __init__(self, settings_json: str) -> None:
        import cv2

        settings = Settings.model_validate_json(settings_json)
        # The models come from this node's own verified cache: FACESEARCH_CACHE_DIR
        # where the node was started, else the user cache there.
        settings = settings.model_copy(update={"cache_dir": Settings().cache_dir})
        # One thread per actor: the pool has an actor per CPU.
        cv2.setNumThreads(1)
        self.analyzer = Analyzer.load(settings)
        self.node = ray.util.get_node_ip_address()
        self.device = "cpu"
        if ray.get_gpu_ids():
            self.device = _embed_on_gpu(self.analyzer, settings)

    def ready(self) -> dict[str, str]:
        return {"version": __version__, "node": self.node, "device": self.device}

    def analyze(self, batch: Work) -> tuple[str, Results]:
        return self.node, analyze_work(self.analyzer, batch)


def _embed_on_gpu(analyzer: Analyzer, settings: Settings) -> str:
    """Run the recogniser in onnxruntime's CUDA provider; detection stays on the CPU
    (OpenCV's YuNet). Without onnxruntime-gpu on the node everything stays on the CPU."""
    try:
        import onnxruntime
    except ImportError:
        log.warning("a GPU was reserved but onnxruntime is not installed on this node")
        return "cpu"
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        log.warning("a GPU was reserved but onnxruntime has no CUDA provider (onnxruntime-gpu)")
        return "cpu"
    if not isinstance(analyzer.embedder, Embedder):
        return "cpu"
    from .models.session import OrtSession

    path = ModelCache(settings.models_dir).ensure(get_model(settings.embedder))
    analyzer.embedder.session = OrtSession(path)
    return "cuda"


_RemoteAnalyzer = ray.remote(AnalyzerActor)


def run_on_ray(
    settings: Settings, batches: Iterable[Work], consume: Callable[[Results], None]
) -> RayStats:
    """Analyse every batch on the cluster at settings.ray.address, passing each
    batch's results to `consume` here, at most two batches per actor in flight."""
    # Ray's driver prints cluster events (such as a node marked dead) on stdout;
    # they go to stderr so that stdout stays the command's own output (--json).
    with contextlib.redirect_stdout(sys.stderr):
        joined = _join(settings)
        try:
            pool = _Pool(settings)
            pool.start()
            pool.run(batches, consume)
            return pool.stats
        finally:
            if joined:
                # The actors belong to this job and end with it.
                ray.shutdown()


def _join(settings: Settings) -> bool:
    """Connect to the cluster unless this process already is; True if it connected here."""
    if ray.is_initialized():
        return False
    _check_reachable(settings.ray.address)
    extra: dict[str, Any] = {}
    if settings.ray.node_ip:
        extra["_node_ip_address"] = settings.ray.node_ip
    try:
        ray.init(
            address=settings.ray.address, namespace="facesearch", log_to_driver=False,
            logging_level=logging.WARNING, **extra,
        )  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise FacesearchError(
            f"cannot join the Ray cluster at {settings.ray.address}: {exc}"
        ) from exc
    return True


def _check_reachable(address: str) -> None:
    """Fail at once where no head answers; Ray itself retries for minutes."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise FacesearchError(
            f"no Ray head answers at {address!r} (give host:port of `ray start --head`): {exc}"
        ) from exc


def plan_actors(nodes: list[dict[str, Any]], workers: int = 0) -> list[tuple[str, float]]:
    """(node id, GPU share) for each actor: one per CPU unless `workers` says how many,
    given to the nodes in turn; the actors on a node with GPUs share them evenly.
    `nodes` are the live entries of ray.nodes()."""
    cpus = {n["NodeID"]: int(n["Resources"].get("CPU", 0)) for n in nodes}
    slots = []
    while any(cpus.values()):
        for node_id, left in cpus.items():
            if left:
                slots.append(node_id)
                cpus[node_id] -= 1
    if not slots:
        return []
    chosen = [slots[i % len(slots)] for i in range(workers or len(slots))]
    gpus = {n["NodeID"]: float(n["Resources"].get("GPU", 0)) for n in nodes}
    plan = []
    for node_id in chosen:
        share = gpus[node_id] / chosen.count(node_id)
        # Ray takes a fraction of one GPU, or whole GPUs.
        plan.append((node_id, share if share <= 1 else float(int(share))))
    return plan


@dataclass
class _Flight:
    actor: Any
    batch: Work
    attempt: int


class _Pool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.settings_json = settings.model_dump_json()
        self.actors: list[Any] = []
        self.flights: dict[Any, _Flight] = {}
        self.stats = RayStats()

    def start(self) -> None:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        plan = plan_actors(nodes, self.settings.ray.workers)
        if not plan:
            raise FacesearchError(f"the Ray cluster at {self.settings.ray.address} has no CPUs")
        self.actors = [self._actor(node_id, gpus) for node_id, gpus in plan]
        try:
            infos = ray.get(
                [a.ready.remote() for a in self.actors], timeout=self.settings.ray.start_timeout
            )
        except GetTimeoutError:
            raise FacesearchError(
                f"{len(self.actors)} Ray workers did not start within "
                f"{self.settings.ray.start_timeout:.0f} s: the cluster has no room for them"
            ) from None
        except RayActorError as exc:
            raise FacesearchError(f"a Ray worker could not load the models: {exc}") from None
        for info in infos:
            if info["version"] != __version__:
                raise FacesearchError(
                    f"node {info['node']} runs facesearch {info['version']}, this machine "
                    f"{__version__}: install the same version on every node"
                )
            self.stats.devices[info["device"]] = self.stats.devices.get(info["device"], 0) + 1

    def run(self, batches: Iterable[Work], consume: Callable[[Results], None]) -> None:
        for batch in batches:
            self._submit(batch, 0)
            while len(self.flights) >= 2 * len(self.actors):
                self._collect(consume)
        while self.flights:
            self._collect(consume)

    def _actor(self, node_id: str | None, gpus: float) -> Any:
        options: dict[str, Any] = {"num_cpus": self.settings.ray.cpus_per_worker, "max_restarts": 0}
        if gpus:
            options["num_gpus"] = gpus
        if node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
        return _RemoteAnalyzer.options(**options).remote(self.settings_json)

    def _submit(self, batch: Work, attempt: int) -> None:
        load = {id(a): 0 for a in self.actors}
        for flight in self.flights.values():
            if id(flight.actor) in load:
                load[id(flight.actor)] += 1
        actor = min(self.actors, key=lambda a: load[id(a)])
        self.flights[actor.analyze.remote(batch)] = _Flight(actor, batch, attempt)

    def _collect(self, consume: Callable[[Results], None]) -> None:
        (ref,), _ = ray.wait(list(self.flights), num_returns=1)
        flight = self.flights.pop(ref)
        try:
            node, results = ray.get(ref)
        except LOST as exc:
            self._replace(flight.actor)
            if flight.attempt >= self.settings.ray.max_retries:
                raise FacesearchError(
                    f"a batch of {work_size(flight.batch)} files was lost "
                    f"{flight.attempt + 1} times with its Ray worker ({type(exc).__name__}); "
                    "what was stored is kept, run the ingest again to continue"
                ) from exc
            log.warning("a Ray worker died (%s); its batch is sent again", type(exc).__name__)
            self.stats.resubmitted += 1
            self._submit(flight.batch, flight.attempt + 1)
            return
        self.stats.images_by_node[node] = self.stats.images_by_node.get(node, 0) + work_size(
            flight.batch
        )
        consume(results)

    def _replace(self, actor: Any) -> None:
        """Swap a dead actor for a new one wherever there is room (on the CPU: the
        GPU node it ran on may be the one that died)."""
        if not any(a is actor for a in self.actors):
            return  # already replaced when an earlier batch of it failed
        self.actors = [a for a in self.actors if a is not actor]
        # It may be gone already, which is what we want.
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        self.actors.append(self._actor(None, 0.0))
        self.stats.replaced += 1
