"""Service fixtures: a real server app over a real catalog with real models, and an
account per role (a plugin of tests/conftest.py; helpers are imported from here).

The module-scoped `world` ingests a few photos of ../shared/data/wild once; tests
talk to it through FastAPI's TestClient with real credentials (API tokens, or a
browser session with its CSRF token), so the whole access path is exercised.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.config import ApiSettings, Settings
from facesearch.engine import Engine
from facesearch.governance.auth import Role
from facesearch.storage import open_catalog

ROLES = [r.value for r in Role]
# The form fields every search must carry.
PURPOSE = {"purpose": "missing person", "case": "MP-2024-17"}
PASSWORD = "correct horse battery"
# img1 and img4 show one person, img3 and img12 another (wild/master.csv).
WILD_PICK = ("img1.jpg", "img3.jpg", "img4.jpg", "img12.jpg", "selfie-many-people.jpg")


@dataclass
class World:
    client: TestClient
    app: object
    settings: Settings
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)

    @property
    def services(self):
        return self.app.state.services

    def as_(self, who: str) -> dict[str, str]:
        """Headers that authenticate as `who` (a role name, or 'outsider')."""
        return self.tokens[who]


def make_settings(base: Path, cache_dir: Path, **api: object) -> Settings:
    """An installation in `base`; FACESEARCH_TEST_DATABASE=postgresql puts its catalog
    on the tests' PostgreSQL server (tests/postgres.py) instead of SQLite."""
    allowed = base / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    extra: dict = {}
    if os.environ.get("FACESEARCH_TEST_DATABASE") == "postgresql":
        import postgres

        extra = {"database_url": postgres.server().create_database(),
                 "crypto": {"key_file": base / "master.key"}}  # fmt: skip
    return Settings(
        data_dir=base / "data", cache_dir=cache_dir, workers=1,
        api=ApiSettings(allowed_roots=[allowed], **api), **extra,
    )  # fmt: skip


def build_app(settings: Settings, analyzer):
    engine = Engine(settings, open_catalog(settings), analyzer)
    return create_app(settings, engine=engine)


def add_accounts(world: World) -> None:
    """One account per role in 'default', and an investigator of another organisation."""
    services = world.services
    default = services.accounts.organisation_named("default")
    other = services.accounts.create_organisation("other agency")
    for role in ROLES:
        user, _ = services.auth.create_user(
            role, default.id, role, PASSWORD, must_change_password=False
        )
        world.user_ids[role] = user.id
        secret, _ = services.auth.create_token(user, "tests")
        world.tokens[role] = {"Authorization": f"Bearer {secret}"}
    user, _ = services.auth.create_user(
        "outsider", other.id, Role.INVESTIGATOR, PASSWORD, must_change_password=False
    )
    world.user_ids["outsider"] = user.id
    secret, _ = services.auth.create_token(user, "tests")
    world.tokens["outsider"] = {"Authorization": f"Bearer {secret}"}


def wait_for_job(client: TestClient, job_id: int, headers: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def upload(client: TestClient, collection: str, files: list[Path], headers: dict):
    parts = [("files", (f.name, f.read_bytes(), "image/jpeg")) for f in files]
    return client.post(f"/api/collections/{collection}/uploads", files=parts, headers=headers)


@pytest.fixture(scope="module")
def world(tmp_path_factory, cache_dir, analyzer, wild):
    """A running app whose organisation "default" holds collection "press" (5 wild photos)."""
    settings = make_settings(tmp_path_factory.mktemp("world"), cache_dir)
    app = build_app(settings, analyzer)
    with TestClient(app) as client:
        world = World(client, app, settings)
        add_accounts(world)
        admin = world.as_("administrator")
        created = client.post(
            "/api/collections",
            json={"name": "press", "source": "deepface test photos", "legal_basis": "test"},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        job = upload(client, "press", [wild / n for n in WILD_PICK], admin).json()
        done = wait_for_job(client, job["id"], admin)
        assert done["status"] == "finished" and done["images"] == 5, done
        yield world


def lfw_slice(lfw: Path, count: int) -> list[Path]:
    """`count` LFW photos of different people with distinct content."""
    return sorted(lfw.glob("A*/*_0001.jpg"))[:count]
