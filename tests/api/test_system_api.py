"""Health, version, Prometheus metrics, OpenAPI documentation and security headers."""

from __future__ import annotations

from apiworld import PURPOSE

from facesearch import __version__


def test_health_needs_no_login_and_says_nothing_more(world):
    world.client.cookies.clear()
    answer = world.client.get("/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_version_names_the_models(world):
    answer = world.client.get("/api/version", headers=world.as_("auditor")).json()
    assert answer == {
        "version": __version__,
        "detector": "yunet-2023mar",
        "embedder": "sface-2021dec",
    }


def _value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"{prefix} not in the metrics"
    return float(lines[0].rsplit(" ", 1)[1])


def test_metrics_count_requests_latency_index_size_and_ingest(world, wild):
    client = world.client
    faces = world.services.catalog.stats()["faces"]
    client.post(
        "/api/search", files={"photo": ("p.jpg", (wild / "img2.jpg").read_bytes())},
        data=PURPOSE, headers=world.as_("investigator"),
    )  # fmt: skip
    client.get("/api/collections/missing", headers=world.as_("auditor"))
    answer = client.get("/metrics", headers=world.as_("auditor"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert _value(text, "facesearch_catalog_faces ") == faces
    assert _value(text, 'facesearch_searches_total{kind="photo"}') >= 1
    # Requests are labelled by route template, never by the raw path.
    assert _value(
        text, 'facesearch_http_requests_total{method="POST",route="/api/search",status="200"}'
    ) >= 1  # fmt: skip
    assert 'route="/api/collections/{name}",status="404"' in text
    assert "/api/collections/missing" not in text
    assert _value(
        text, 'facesearch_http_request_duration_seconds_count{method="POST",route="/api/search"}'
    ) >= 1  # fmt: skip
    assert 'facesearch_http_request_duration_seconds_bucket{le="0.5"' in text
    # The world's ingest job stored 5 images through the job runner.
    assert _value(text, "facesearch_ingest_images_total ") >= 5
    assert _value(text, "facesearch_ingest_faces_total ") >= 5
    assert "facesearch_ingest_rate_images_per_second" in text


def test_openapi_and_docs_are_served_without_any_cdn(world):
    client, headers = world.client, world.as_("investigator")
    schema = client.get("/openapi.json", headers=headers).json()
    paths = schema["paths"]
    for path in (
        "/api/search", "/api/collections", "/api/jobs/{job_id}/events",
        "/api/images/{image_id}/file", "/api/users", "/api/tokens", "/health",
    ):  # fmt: skip
        assert path in paths, path
    # No response shape carries an embedding, a hash or a password.
    fields = {
        name for shape in schema["components"]["schemas"].values()
        for name in shape.get("properties", {})
    }  # fmt: skip
    assert not {"embedding", "sha256", "password_hash", "token_hash"} & fields
    docs = client.get("/docs", headers=headers)
    assert docs.status_code == 200 and "/docs-static/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text.replace(
        "https://fastapi.tiangolo.com", ""
    )
    bundle = client.get("/docs-static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_security_headers_on_every_answer(world):
    for answer in (world.client.get("/health"), world.client.get("/login")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
