"""Prometheus metrics for one app: its own registry, never the process-global one."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _CatalogCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self):
        counts = self.counts()
        for key, help_text in (
            ("faces", "Faces in the catalog (the size of the search index)."),
            ("images", "Images in the catalog."),
            ("collections", "Declared collections."),
        ):
            family = GaugeMetricFamily(f"facesearch_catalog_{key}", help_text)
            family.add_metric([], counts.get(key, 0))
            yield family


class Metrics:
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facesearch_http_requests", "HTTP requests answered.",
            ["method", "route", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "facesearch_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.searches = Counter(
            "facesearch_searches", "Searches answered.", ["kind"], registry=self.registry
        )
        self.ingested_images = Counter(
            "facesearch_ingest_images", "Images stored by ingest jobs.", registry=self.registry
        )
        self.ingested_faces = Counter(
            "facesearch_ingest_faces", "Faces stored by ingest jobs.", registry=self.registry
        )
        self.ingest_rate = Gauge(
            "facesearch_ingest_rate_images_per_second",
            "Throughput of the running ingest job (0 when none runs).", registry=self.registry,
        )  # fmt: skip
        self.jobs_running = Gauge(
            "facesearch_ingest_jobs_running", "Ingest jobs running now.", registry=self.registry
        )
        self.registry.register(_CatalogCollector(counts))
        self._seen: dict[int, tuple[int, int]] = {}

    def job_progress(self, job_id: int, images: int, faces: int, rate: float) -> None:
        """`images` and `faces` count from the start of this run of the job."""
        seen_images, seen_faces = self._seen.get(job_id, (0, 0))
        self.ingested_images.inc(max(images - seen_images, 0))
        self.ingested_faces.inc(max(faces - seen_faces, 0))
        self._seen[job_id] = (images, faces)
        self.ingest_rate.set(rate)
        self.jobs_running.set(1)

    def job_finished(self, job_id: int) -> None:
        self._seen.pop(job_id, None)
        self.ingest_rate.set(0)
        self.jobs_running.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request by its route template, not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                method = scope.get("method", "")
                metrics.requests.labels(method, template, str(status)).inc()
                metrics.latency.labels(method, template).observe(time.perf_counter() - started)
