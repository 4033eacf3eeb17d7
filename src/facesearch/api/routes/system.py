"""Health (anonymous), version, Prometheus metrics and the API documentation."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ... import __version__
from ...governance.auth import Actor, Permission
from ..deps import ActorDep, ServicesDep, require

router = APIRouter(tags=["system"])


@router.get("/health")
def health(services: ServicesDep) -> dict[str, str]:
    """Liveness for load balancers: the catalog answers. Needs no login."""
    services.catalog.stats()
    return {"status": "ok"}


@router.get("/api/version")
def version(services: ServicesDep, actor: Actor = require(Permission.ACCOUNT)) -> dict[str, str]:
    settings = services.settings
    return {"version": __version__, "detector": settings.detector, "embedder": settings.embedder}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(services: ServicesDep, actor: Actor = require(Permission.METRICS_READ)) -> Response:
    """Prometheus text format: requests, latency histograms, catalog size, ingest."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, actor: ActorDep) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
def docs(actor: ActorDep) -> HTMLResponse:
    """Swagger UI from files shipped in a Python package: no CDN is contacted."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title="facesearch API",
        swagger_js_url="/docs-static/swagger-ui-bundle.js",
        swagger_css_url="/docs-static/swagger-ui.css",
        swagger_favicon_url="/docs-static/favicon.png",
    )  # fmt: skip
    # Swagger UI starts itself with one inline script: allowed by its hash, not by
    # 'unsafe-inline'. Its components set style attributes, hence the style exception.
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", page.body.decode(), re.S)
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"script-src 'self' {hashes}; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    )
    return page
