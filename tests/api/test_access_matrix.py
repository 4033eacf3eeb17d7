"""The access-control matrix: every route of the app against every kind of caller.

Callers: each role of two organisations, by API token and by browser session, and
callers who must be turned away (no credentials, an expired session, a revoked
token, an expired token). Each cell states on its own, in this file, which roles
may use the route: the expectations are written out here, not read from the
role → permission table the server uses, so a change to that table shows up here.

A cell that addresses an object (a collection, image, face, job, search,
verification, user or token) is tried twice: on an object of the caller's own
organisation (it must succeed, if the role allows it) and on one of the other
organisation, addressed by its id or name (it must answer 404, as for an object
that does not exist). Every successful answer is also searched for strings only
the other organisation's data contains.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from apiworld import PASSWORD, build_app, lfw_slice, upload, wait_for_job
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount
from videoclips import Person, Shot, build_clip

from facesearch.clock import now
from facesearch.config import ApiSettings, GovernanceSettings, Settings
from facesearch.governance.audit import SearchPerformed
from facesearch.governance.auth import sha256, stamp
from facesearch.store.people import PeopleStore

ADMIN, SUPERVISOR, INVESTIGATOR, AUDITOR = "administrator", "supervisor", "investigator", "auditor"
ROLES = (ADMIN, SUPERVISOR, INVESTIGATOR, AUDITOR)
EVERYONE = frozenset(ROLES)
SEARCHERS = frozenset({SUPERVISOR, INVESTIGATOR})
INGESTERS = SEARCHERS | {ADMIN}
OVERSEERS = frozenset({SUPERVISOR, AUDITOR})
PEOPLE_READERS = frozenset({ADMIN, SUPERVISOR, AUDITOR})
ONLY_ADMIN = frozenset({ADMIN})
PUBLIC = None  # a route that answers without credentials
ORGS = ("dflt", "othr")
NEW_PASSWORD = PASSWORD + " and more"


@dataclass
class Org:
    """One organisation's accounts and the objects the cells address."""

    tag: str
    id: int = 0
    users: dict[str, int] = field(default_factory=dict)  # role → user id
    tokens: dict[str, str] = field(default_factory=dict)  # role → token secret
    collection: str = ""  # a name no other organisation uses
    image_id: int = 0
    video_id: int = 0  # a video (an image record of kind video)
    face_id: int = 0
    job_id: int = 0
    search_id: int = 0
    match_face_id: int = 0  # among the matches of search_id
    spare_faces: list[int] = field(default_factory=list)  # one for each erasure
    person_id: int = 0  # a person holding face_id

    @property
    def markers(self) -> tuple[str, ...]:
        """Strings that only this organisation's data contains."""
        return (f"{self.tag}-archive", f"src-{self.tag}", f"CASE-{self.tag.upper()}")

    @property
    def purpose(self) -> dict[str, str]:
        return {"purpose": "missing person", "case": f"CASE-{self.tag.upper()}"}


@dataclass
class Call:
    """One request of a cell, made for one caller against one organisation's objects."""

    caller_org: Org
    target: Org
    role: str
    user_id: int
    csrf: str = ""


@dataclass(frozen=True)
class Cell:
    method: str
    path: str
    allowed: frozenset[str] | None  # None: public
    success: int
    request: Callable[[object, Call], tuple[str, dict]]  # → concrete path, request kwargs
    addresses_object: bool = False
    # What a signed-in caller gets from a public route, where it differs.
    signed_in_success: int | None = None
    # Logging in replaces the session cookie: sent from a client of its own.
    own_client: bool = False
    # Roles that may reach other organisations' objects by design (administrators
    # run the installation's accounts).
    across_organisations: frozenset[str] = frozenset()


counter = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(counter)}"


def plain(path: str, **kwargs):
    return lambda world, call: (path, kwargs)


def fresh_collection(world, call: Call) -> tuple[str, dict]:
    name = unique(f"doomed-{call.target.tag}")
    world.services.catalog.create_collection(name, "s", "l", None, call.target.id)
    return f"/api/collections/{name}", {}


def fresh_token(world, call: Call) -> tuple[str, dict]:
    services = world.services
    owner = call.user_id if call.target is call.caller_org else call.target.users[AUDITOR]
    _, record = services.auth.create_token(services.accounts.user(owner), unique("doomed"))
    return f"/api/tokens/{record.id}", {}


def fresh_job(world, call: Call) -> tuple[str, dict]:
    services = world.services
    collection = services.catalog.collection(call.target.collection, call.target.id)
    job = services.jobs.create(collection.id, None, "paths", [])
    return f"/api/jobs/{job.id}", {}


def fresh_verification(world, call: Call) -> tuple[str, dict]:
    found = world.services.audit.store.verification
    store = world.services.audit.store
    decided = store.add_verification(
        call.target.search_id, call.target.match_face_id, "confirmed", "a colleague", now()
    )
    assert found(decided) is not None
    return f"/api/search/verifications/{decided}/confirm", {}


def fresh_pending_search(world, call: Call) -> tuple[str, dict]:
    target = call.target
    entry = world.services.record(
        "a colleague",
        SearchPerformed("missing person", f"CASE-{target.tag.upper()}", None, None,
                        target.face_id, [target.collection], [target.face_id], [0.9], 1,
                        authorisation_pending=True),
        organisation_id=target.id,
    )  # fmt: skip
    return f"/api/search/{entry.seq}/authorisation", {"json": {"reference": unique("AUTH")}}


def search_photo(world, call: Call) -> tuple[str, dict]:
    files = {"photo": ("p.jpg", world.probe)}
    return "/api/search", {"files": files, "data": {"top": "5", **call.caller_org.purpose}}


def search_face(world, call: Call) -> tuple[str, dict]:
    data = {"face_id": str(call.target.face_id), **call.caller_org.purpose}
    return "/api/search", {"data": data}


def change_password(world, call: Call) -> tuple[str, dict]:
    return "/api/auth/password", {
        "json": {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    }


def upload_photo(world, call: Call) -> tuple[str, dict]:
    files = [("files", ("probe.jpg", world.probe, "image/jpeg"))]
    return f"/api/collections/{call.target.collection}/uploads", {"files": files}


def start_job(world, call: Call) -> tuple[str, dict]:
    body = {"collection": call.target.collection, "paths": [str(world.allowed)]}
    return "/api/jobs", {"json": body}


def erase(world, call: Call) -> tuple[str, dict]:
    return "/api/rights/erasures", {
        "json": {"face_ids": [_spare_face(call)], "reference": unique("ERASE")}
    }


def rights_access(world, call: Call) -> tuple[str, dict]:
    return "/api/rights/access", {
        "files": {"photo": ("p.jpg", world.probe)}, "data": {"reference": unique("SAR")}
    }  # fmt: skip


def _people(world) -> PeopleStore:
    return PeopleStore(world.services.catalog)


def _new_person(world, target: Org, faces: list[int] = ()) -> int:
    """A person of the target organisation holding `faces` (taken from whoever had them)."""
    store = _people(world)
    with store.catalog.transaction():
        spec = world.services.engine.embedder_spec
        person = store._new_person(target.id, spec.name, spec.version, "matrix")
        for face in faces:
            store.conn.execute("DELETE FROM person_faces WHERE face_id = ?", (face,))
            store.conn.execute(
                "INSERT INTO person_faces (face_id, person_id, pinned) VALUES (?, ?, 1)",
                (face, person),
            )
    return person


def _loose_face(world, target: Org) -> int:
    """A face of the target organisation other than its fixed person's."""
    rows = world.services.catalog.conn.execute(
        "SELECT f.id FROM faces f JOIN collections c ON c.id = f.collection_id "
        "WHERE c.organisation_id = ? AND f.id <> ? ORDER BY f.id DESC",
        (target.id, target.face_id),
    ).fetchall()
    return rows[0][0]


def merge_people(world, call: Call) -> tuple[str, dict]:
    source, into = _new_person(world, call.target), _new_person(world, call.target)
    return f"/api/people/{source}/merge", {"json": {"into": into}}


def split_person(world, call: Call) -> tuple[str, dict]:
    face = _loose_face(world, call.target)
    person = _new_person(world, call.target, [face])
    return f"/api/people/{person}/split", {"json": {"face_ids": [face]}}


def not_this_person(world, call: Call) -> tuple[str, dict]:
    face = _loose_face(world, call.target)
    person = _new_person(world, call.target, [face])
    return f"/api/people/{person}/not-this", {"json": {"face_ids": [face]}}


def undo_person_operation(world, call: Call) -> tuple[str, dict]:
    person = _new_person(world, call.target)
    _, op = _people(world).rename(call.target.id, person, unique("Jane"), "a colleague")
    return f"/api/people/operations/{op}/undo", {}


def login_json(world, call: Call) -> tuple[str, dict]:
    return "/api/auth/login", {"json": {"username": "door-user", "password": PASSWORD}}


def login_form(world, call: Call) -> tuple[str, dict]:
    return "/login", {
        "data": {"username": "door-user", "password": PASSWORD}, "follow_redirects": False
    }  # fmt: skip


def on(target_path: str, **kwargs):
    """A path with {fields} of the target organisation filled in."""

    def build(world, call: Call) -> tuple[str, dict]:
        t = call.target
        values = {"name": t.collection, "image_id": t.image_id, "video_id": t.video_id,
                  "face_id": t.face_id,
                  "job_id": t.job_id, "search_id": t.search_id,
                  "user_id": t.users[AUDITOR], "person_id": t.person_id}  # fmt: skip
        extra = {k: (v(t) if callable(v) else v) for k, v in kwargs.items()}
        return target_path.format(**values), extra

    return build


NO_REDIRECT = {"follow_redirects": False}

# (method, route) → the cells that exercise it. Every route of the app must be here.
CELLS = [
    Cell("POST", "/api/auth/login", PUBLIC, 200, login_json, own_client=True),
    Cell("POST", "/api/auth/logout", EVERYONE, 204, plain("/api/auth/logout")),
    Cell("GET", "/api/auth/me", EVERYONE, 200, plain("/api/auth/me")),
    Cell("POST", "/api/auth/password", EVERYONE, 200, change_password),
    Cell("GET", "/api/organisations", PEOPLE_READERS, 200, plain("/api/organisations")),
    Cell("POST", "/api/organisations", ONLY_ADMIN, 201,
         lambda w, c: ("/api/organisations", {"json": {"name": unique("agency")}})),
    Cell("GET", "/api/users", PEOPLE_READERS, 200, plain("/api/users")),
    Cell("POST", "/api/users", ONLY_ADMIN, 201,
         lambda w, c: ("/api/users", {"json": {"username": unique("new"), "role": AUDITOR}})),
    Cell("GET", "/api/users/{user_id}", PEOPLE_READERS, 200, on("/api/users/{user_id}"),
         addresses_object=True, across_organisations=ONLY_ADMIN),
    Cell("PATCH", "/api/users/{user_id}", ONLY_ADMIN, 200,
         on("/api/users/{user_id}", json={"active": True}), addresses_object=True,
         across_organisations=ONLY_ADMIN),
    Cell("POST", "/api/users/{user_id}/unlock", ONLY_ADMIN, 200, on("/api/users/{user_id}/unlock"),
         addresses_object=True, across_organisations=ONLY_ADMIN),
    Cell("GET", "/api/tokens", EVERYONE, 200, plain("/api/tokens")),
    Cell("GET", "/api/tokens", ONLY_ADMIN, 200, plain("/api/tokens?all=true")),
    Cell("POST", "/api/tokens", EVERYONE, 201,
         lambda w, c: ("/api/tokens", {"json": {"name": unique("t")}})),
    Cell("DELETE", "/api/tokens/{token_id}", EVERYONE, 200, fresh_token,
         addresses_object=True, across_organisations=ONLY_ADMIN),
    Cell("GET", "/api/collections", EVERYONE, 200, plain("/api/collections")),
    Cell("POST", "/api/collections", ONLY_ADMIN, 201,
         lambda w, c: ("/api/collections", {"json": {
             "name": unique("new"), "source": "s", "legal_basis": "l"}})),
    Cell("GET", "/api/collections/{name}", EVERYONE, 200, on("/api/collections/{name}"),
         addresses_object=True),
    Cell("PATCH", "/api/collections/{name}", ONLY_ADMIN, 200,
         on("/api/collections/{name}", json={"retention_days": 4000}), addresses_object=True),
    Cell("DELETE", "/api/collections/{name}", ONLY_ADMIN, 204, fresh_collection,
         addresses_object=True),
    Cell("POST", "/api/collections/{name}/uploads", INGESTERS, 202, upload_photo,
         addresses_object=True),
    Cell("GET", "/api/jobs", EVERYONE, 200, plain("/api/jobs")),
    Cell("POST", "/api/jobs", INGESTERS, 202, start_job, addresses_object=True),
    Cell("GET", "/api/jobs/{job_id}", EVERYONE, 200, on("/api/jobs/{job_id}"),
         addresses_object=True),
    Cell("DELETE", "/api/jobs/{job_id}", INGESTERS, 202, fresh_job, addresses_object=True),
    Cell("GET", "/api/jobs/{job_id}/events", EVERYONE, 200, on("/api/jobs/{job_id}/events"),
         addresses_object=True),
    Cell("POST", "/api/search", SEARCHERS, 200, search_photo),
    Cell("POST", "/api/search", SEARCHERS, 200, search_face, addresses_object=True),
    Cell("POST", "/api/search/{search_id}/verifications", SEARCHERS, 201,
         on("/api/search/{search_id}/verifications",
            json=lambda t: {"face_id": t.match_face_id, "decision": "rejected"}),
         addresses_object=True),
    Cell("POST", "/api/search/verifications/{verification_id}/confirm", SEARCHERS, 200,
         fresh_verification, addresses_object=True),
    Cell("POST", "/api/search/{search_id}/authorisation", SEARCHERS, 201, fresh_pending_search,
         addresses_object=True),
    Cell("GET", "/api/images", SEARCHERS, 200, on("/api/images?collection={name}"),
         addresses_object=True),
    Cell("GET", "/api/images/{image_id}", SEARCHERS, 200, on("/api/images/{image_id}"),
         addresses_object=True),
    Cell("GET", "/api/images/{image_id}/file", SEARCHERS, 200, on("/api/images/{image_id}/file"),
         addresses_object=True),
    Cell("GET", "/api/images/{image_id}/clip", SEARCHERS, 200, on("/api/images/{video_id}/clip"),
         addresses_object=True),
    Cell("GET", "/api/images/{image_id}/clip", SEARCHERS, 206,
         on("/api/images/{video_id}/clip", headers={"Range": "bytes=10-99"}),
         addresses_object=True),
    Cell("GET", "/api/faces/{face_id}", SEARCHERS, 200, on("/api/faces/{face_id}"),
         addresses_object=True),
    Cell("GET", "/api/faces/{face_id}/thumbnail", SEARCHERS, 200,
         on("/api/faces/{face_id}/thumbnail"), addresses_object=True),
    Cell("GET", "/api/audit", OVERSEERS, 200, plain("/api/audit")),
    Cell("GET", "/api/audit", OVERSEERS, 200, plain("/api/audit?format=csv")),
    Cell("GET", "/api/audit/verify", OVERSEERS, 200, plain("/api/audit/verify")),
    Cell("GET", "/api/audit/report", OVERSEERS, 200, plain("/api/audit/report")),
    Cell("POST", "/api/rights/access", frozenset({SUPERVISOR}), 200, rights_access),
    Cell("POST", "/api/rights/erasures", frozenset({SUPERVISOR}), 200, erase,
         addresses_object=True),
    Cell("GET", "/api/people", SEARCHERS, 200, plain("/api/people")),
    Cell("GET", "/api/people/{person_id}", SEARCHERS, 200, on("/api/people/{person_id}"),
         addresses_object=True),
    Cell("PATCH", "/api/people/{person_id}", SEARCHERS, 200,
         on("/api/people/{person_id}", json={"name": "Jane Roe"}), addresses_object=True),
    Cell("POST", "/api/people/{person_id}/merge", SEARCHERS, 200, merge_people,
         addresses_object=True),
    Cell("POST", "/api/people/{person_id}/split", SEARCHERS, 200, split_person,
         addresses_object=True),
    Cell("POST", "/api/people/{person_id}/not-this", SEARCHERS, 200, not_this_person,
         addresses_object=True),
    Cell("POST", "/api/people/operations/{operation_id}/undo", SEARCHERS, 200,
         undo_person_operation, addresses_object=True),
    Cell("POST", "/api/people/{person_id}/search", SEARCHERS, 200,
         on("/api/people/{person_id}/search", json=lambda t: dict(t.purpose, top=3)),
         addresses_object=True),
    Cell("POST", "/api/people/recluster", SEARCHERS, 200, plain("/api/people/recluster")),
    Cell("GET", "/health", PUBLIC, 200, plain("/health")),
    Cell("GET", "/api/version", EVERYONE, 200, plain("/api/version")),
    Cell("GET", "/metrics", frozenset({ADMIN, AUDITOR}), 200, plain("/metrics")),
    Cell("GET", "/openapi.json", EVERYONE, 200, plain("/openapi.json")),
    Cell("GET", "/docs", EVERYONE, 200, plain("/docs")),
    # Pages: a signed-in caller is sent on (303) or shown the page (200) or a 403 page.
    Cell("GET", "/", PUBLIC, 303, plain("/", **NO_REDIRECT)),
    Cell("GET", "/login", PUBLIC, 200, plain("/login", **NO_REDIRECT), signed_in_success=303),
    Cell("POST", "/login", PUBLIC, 303, login_form, own_client=True),
    Cell("POST", "/logout", PUBLIC, 303, lambda w, c: (
        "/logout", {"data": {"csrf_token": c.csrf}, **NO_REDIRECT})),
    Cell("GET", "/search", SEARCHERS, 200, plain("/search", **NO_REDIRECT)),
    Cell("GET", "/people", SEARCHERS, 200, plain("/people", **NO_REDIRECT)),
    # The page is a shell; the person comes from GET /api/people/{id}, scoped above.
    Cell("GET", "/people/{person_id}", SEARCHERS, 200, on("/people/{person_id}", **NO_REDIRECT)),
    Cell("GET", "/collections", EVERYONE, 200, plain("/collections", **NO_REDIRECT)),
    Cell("GET", "/oversight", OVERSEERS, 200, plain("/oversight", **NO_REDIRECT)),
    Cell("GET", "/admin", PEOPLE_READERS, 200, plain("/admin", **NO_REDIRECT)),
    Cell("GET", "/account", EVERYONE, 200, plain("/account", **NO_REDIRECT)),
]  # fmt: skip
PAGES = {
    "/search",
    "/people",
    "/people/{person_id}",
    "/collections",
    "/oversight",
    "/admin",
    "/account",
}
# Static files (scripts, styles, Swagger UI's bundle): public, and hold no data.
STATIC_MOUNTS = {"/static", "/docs-static"}


@dataclass
class MatrixWorld:
    client: TestClient
    app: object
    orgs: dict[str, Org]
    probe: bytes
    allowed: object
    bad_credentials: dict[str, dict] = field(default_factory=dict)
    requests: int = 0

    @property
    def services(self):
        return self.app.state.services


def _settings(base, cache_dir) -> Settings:
    allowed = base / "allowed"
    allowed.mkdir(parents=True)
    return Settings(
        data_dir=base / "data", cache_dir=cache_dir, workers=1,
        api=ApiSettings(allowed_roots=[allowed]),
        governance=GovernanceSettings(pending_authorisation_hours=24),
    )  # fmt: skip


def _populate(world: MatrixWorld, photos: dict[str, list]) -> None:
    services, client = world.services, world.client
    default = services.accounts.organisation_named("default").id
    other = services.accounts.create_organisation("other agency").id
    for org, org_id in zip(world.orgs.values(), (default, other), strict=True):
        org.id = org_id
        for role in ROLES:
            user, _ = services.auth.create_user(
                f"{org.tag}-{role}", org_id, role, PASSWORD, must_change_password=False
            )
            org.users[role] = user.id
            org.tokens[role] = services.auth.create_token(user, "matrix")[0]
        admin = {"Authorization": f"Bearer {org.tokens[ADMIN]}"}
        # Both organisations call a collection "press": a name taken elsewhere is no
        # business of this organisation and must not be refused.
        for name in ("press", f"{org.tag}-archive"):
            body = {"name": name, "source": f"src-{org.tag}", "legal_basis": "test"}
            made = client.post("/api/collections", json=body, headers=admin)
            assert made.status_code == 201, made.text
        # The faces live in the collections that share a name, so a check by name
        # alone would mix the organisations up.
        org.collection = f"{org.tag}-archive"
        job = upload(client, "press", photos[org.tag], admin).json()
        done = wait_for_job(client, job["id"], admin)
        assert done["status"] == "finished" and done["faces"] >= 2, done
        org.job_id = job["id"]
        catalog = services.catalog
        images = catalog.images(catalog.collection("press", org_id), 50)
        faces = [f["id"] for image in images for f in catalog.face_list(image["id"], 50)]
        org.image_id = images[0]["id"]
        org.video_id = next(i["id"] for i in images if i["path"].endswith(".webm"))
        org.face_id, org.spare_face_id = faces[0], faces[-1]
        searcher = {"Authorization": f"Bearer {org.tokens[INVESTIGATOR]}"}
        found = client.post("/api/search", data={"face_id": str(org.face_id), **org.purpose},
                            headers=searcher)  # fmt: skip
        assert found.status_code == 200, found.text
        org.search_id = found.json()["search_id"]
        org.match_face_id = found.json()["matches"][0]["face_id"]
        org.spare_faces = [f for f in faces if f not in (org.face_id, org.match_face_id)]
    for org in world.orgs.values():
        org.person_id = _new_person(world, org, [org.face_id])
    services.auth.create_user("door-user", default, AUDITOR, PASSWORD, must_change_password=False)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, cache_dir, analyzer, wild, lfw) -> MatrixWorld:
    base = tmp_path_factory.mktemp("matrix")
    settings = _settings(base, cache_dir)
    app = build_app(settings, analyzer)
    probe = (wild / "img2.jpg").read_bytes()
    (settings.api.allowed_roots[0] / "one.jpg").write_bytes(probe)
    photos = {"dflt": [wild / n for n in ("img1.jpg", "img3.jpg", "selfie-many-people.jpg")],
              "othr": [*lfw_slice(lfw, 3), wild / "img4.jpg"]}  # fmt: skip
    for tag, files in photos.items():  # and a short video of the first photo's person
        clip = base / f"{tag}-video.webm"
        build_clip(clip, [Shot(2.0, [Person("one", files[0])])], "webm-vp9", (320, 240))
        files.append(clip)
    with TestClient(app) as client:
        world = MatrixWorld(
            client, app, {t: Org(t) for t in ORGS}, probe, settings.api.allowed_roots[0]
        )
        _populate(world, photos)
        world.bad_credentials = _bad_credentials(world)
        yield world


def _bad_credentials(world: MatrixWorld) -> dict[str, dict]:
    """Headers or cookies that must be refused, each for a reason of its own."""
    services = world.services
    org = world.orgs["dflt"]
    user = services.accounts.user(org.users[SUPERVISOR])
    revoked, record = services.auth.create_token(user, "revoked")
    services.accounts.revoke_token(record.id)
    expired, record = services.auth.create_token(user, "expired")
    past = stamp(datetime.now(UTC) - timedelta(minutes=5))
    with services.db.transaction() as conn:
        conn.execute("UPDATE api_tokens SET expires_at = ? WHERE id = ?", (past, record.id))
    session, _ = services.auth.login(user.username, PASSWORD)
    with services.db.transaction() as conn:
        conn.execute(
            "UPDATE sessions SET expires_at = ? WHERE token_hash = ?", (past, sha256(session))
        )
    return {
        "no credentials": {},
        "revoked token": {"headers": {"Authorization": f"Bearer {revoked}"}},
        "expired token": {"headers": {"Authorization": f"Bearer {expired}"}},
        "expired session": {"cookies": {"facesearch_session": session}},
        "guessed token": {"headers": {"Authorization": "Bearer fs_" + "A" * 43}},
    }


def _walk(routes, prefix: str = ""):
    """Every route the app answers, through included routers (as FastAPI nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield prefix + route.path, route
        else:
            raise AssertionError(f"a route of a kind the matrix does not know: {route!r}")


def _app_routes(app) -> set[tuple[str, str]]:
    found = set()
    for path, route in _walk(app.routes):
        if isinstance(route, Mount):
            assert path in STATIC_MOUNTS, f"{path} is mounted but not in the access matrix"
            continue
        found |= {(method, path) for method in route.methods - {"HEAD"}}
    return found


def test_every_route_of_the_app_has_cells_in_the_matrix(matrix):
    routes = _app_routes(matrix.app)
    covered = {(cell.method, cell.path) for cell in CELLS}
    assert routes - covered == set(), "routes without a cell in the access matrix"
    assert covered - routes == set(), "cells for routes the app no longer has"
    assert len(routes) >= 50


def _reset_password(world: MatrixWorld, user_id: int) -> None:
    services = world.services
    services.accounts.update_user(
        user_id, password_hash=services.auth.hash_password(PASSWORD), must_change_password=False
    )


class Caller:
    """A signed-in caller: by API token, or by a browser session with its CSRF token."""

    def __init__(self, world: MatrixWorld, org: Org, role: str, via: str) -> None:
        self.world, self.org, self.role, self.via = world, org, role, via
        self.client = TestClient(world.app)
        self.csrf = ""
        if via == "token":
            self.client.headers["Authorization"] = f"Bearer {org.tokens[role]}"

    def ensure_signed_in(self) -> None:
        if self.via == "session" and self.client.get("/api/auth/me").status_code != 200:
            self.client.cookies.clear()
            answer = self.client.post(
                "/api/auth/login",
                json={"username": f"{self.org.tag}-{self.role}", "password": PASSWORD},
            )
            assert answer.status_code == 200, answer.text
            self.csrf = answer.json()["csrf_token"]
            self.client.headers["X-CSRF-Token"] = self.csrf


def _spare_face(call: Call) -> int:
    # Erasure removes the face: each successful one needs a face of its own.
    if call.target is call.caller_org and call.role == SUPERVISOR:
        return call.target.spare_faces.pop()
    return call.target.face_id  # refused before anything is erased


def _expected(cell: Cell, role: str, foreign: bool) -> int:
    if cell.allowed is PUBLIC:
        return cell.signed_in_success or cell.success
    if role not in cell.allowed:
        return 403
    if foreign and role not in cell.across_organisations:
        return 404
    return cell.success


def _policy(header: str) -> dict[str, str]:
    """A Content-Security-Policy as directive → sources."""
    pairs = (part.strip().partition(" ") for part in header.split(";") if part.strip())
    return {name: sources for name, _, sources in pairs}


def _check_security_headers(answer, where) -> None:
    """Every answer of the app, success or error, carries the protective headers."""
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff", where
    assert headers["x-frame-options"] == "DENY", where
    assert headers["referrer-policy"] == "same-origin", where
    assert "camera=()" in headers["permissions-policy"], where
    policy = _policy(headers["content-security-policy"])
    assert policy["frame-ancestors"] == "'none'", where
    assert "unsafe" not in policy["script-src"] and "unsafe" not in policy["default-src"], where
    # Faces, names and audit entries: nothing may be kept by a browser or a proxy.
    assert headers["cache-control"] == "no-store", where
    assert "strict-transport-security" not in headers, where  # plain http here


def _check_no_foreign_data(world: MatrixWorld, caller_org: Org, cell: Cell, answer) -> None:
    other = next(o for o in world.orgs.values() if o is not caller_org)
    body = answer.text
    for marker in other.markers:
        assert marker not in body, (cell.method, cell.path, caller_org.tag, marker)
    if cell.path == "/api/search" and answer.status_code == 200:
        catalog = world.services.catalog
        for match in answer.json()["matches"]:
            image = catalog.image(match["image_id"])
            assert image["organisation_id"] == caller_org.id, match


CALLERS = [(tag, role, via) for via in ("token", "session") for tag in ORGS for role in ROLES]


@pytest.mark.parametrize(("tag", "role", "via"), CALLERS, ids=["-".join(c) for c in CALLERS])
def test_each_caller_gets_exactly_what_its_role_allows_and_only_its_organisations_data(
    matrix, tag, role, via
):
    world = matrix
    org = world.orgs[tag]
    other = next(o for o in world.orgs.values() if o is not org)
    caller = Caller(world, org, role, via)
    tried = 0
    for cell in CELLS:
        targets = [(org, False), (other, True)] if cell.addresses_object else [(org, False)]
        for target, foreign in targets:
            caller.ensure_signed_in()
            call = Call(org, target, role, org.users[role], caller.csrf)
            path, kwargs = cell.request(world, call)
            client = TestClient(world.app) if cell.own_client else caller.client
            answer = client.request(cell.method, path, **kwargs)
            world.requests += 1
            tried += 1
            expected = _expected(cell, role, foreign)
            where = (tag, role, via, cell.method, path, "foreign" if foreign else "own")
            assert answer.status_code == expected, (*where, answer.status_code, answer.text[:300])
            if expected == 403 and cell.path not in PAGES:
                assert f"the {role} role does not allow" in answer.json()["detail"], where
            if expected == 404:
                assert answer.json()["detail"].startswith("no "), where
            _check_security_headers(answer, where)
            if answer.status_code < 400:
                _check_no_foreign_data(world, org, cell, answer)
            if cell.path == "/api/auth/password" and answer.status_code == 200:
                _reset_password(world, org.users[role])
            if via == "session" and "x-csrf-token" in answer.headers:
                caller.csrf = answer.headers["x-csrf-token"]
                caller.client.headers["X-CSRF-Token"] = caller.csrf
    assert tried == sum(2 if c.addresses_object else 1 for c in CELLS)


@pytest.mark.parametrize("kind", ["no credentials", "revoked token", "expired token",
                                  "expired session", "guessed token"])  # fmt: skip
def test_callers_without_valid_credentials_reach_only_the_public_routes(matrix, kind):
    world = matrix
    org = world.orgs["dflt"]
    credentials = world.bad_credentials[kind]
    tried = 0
    for cell in CELLS:
        client = TestClient(world.app, cookies=credentials.get("cookies"))
        path, kwargs = cell.request(world, Call(org, org, "", org.users[AUDITOR]))
        headers = {**(credentials.get("headers") or {}), **kwargs.pop("headers", {})}
        answer = client.request(cell.method, path, headers=headers, **kwargs)
        world.requests += 1
        tried += 1
        where = (kind, cell.method, path, answer.status_code, answer.text[:200])
        _check_security_headers(answer, where)
        if cell.allowed is PUBLIC:
            assert answer.status_code == cell.success, where
        elif cell.path in PAGES:
            assert answer.status_code == 303, where
            assert answer.headers["location"].startswith("/login"), where
        else:
            assert answer.status_code == 401, where
            assert answer.headers["www-authenticate"] == "Bearer", where
        if answer.status_code < 400 and cell.path not in ("/api/auth/login", "/login"):
            for other in world.orgs.values():
                for marker in other.markers:
                    assert marker not in answer.text, where
    assert tried == len(CELLS)


def test_static_files_may_be_cached_and_https_adds_strict_transport_security(matrix):
    world = matrix
    static = world.client.get("/static/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
    assert static.headers["x-content-type-options"] == "nosniff"
    over_https = TestClient(world.app, base_url="https://testserver")
    for path in ("/health", "/login", "/api/auth/me", "/static/app.css"):
        answer = over_https.get(path, follow_redirects=False)
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000"), path
    token = {"Authorization": f"Bearer {world.orgs['dflt'].tokens[AUDITOR]}"}
    docs = world.client.get("/docs", headers=token)
    policy = _policy(docs.headers["content-security-policy"])
    assert docs.status_code == 200 and policy["script-src"].startswith("'self' 'sha256-")
    assert "unsafe" not in policy["script-src"]


def test_collection_names_of_one_organisation_say_nothing_about_another(matrix):
    world = matrix
    client = world.client
    mine, theirs = world.orgs["dflt"], world.orgs["othr"]
    admin = {"Authorization": f"Bearer {theirs.tokens[ADMIN]}"}
    # The other organisation's archive name is free here, and taken names answer 409
    # only within one's own organisation.
    body = {"name": mine.collection, "source": "s", "legal_basis": "l"}
    assert client.post("/api/collections", json=body, headers=admin).status_code == 201
    again = client.post("/api/collections", json=body, headers=admin)
    assert again.status_code == 409
    listed = client.get("/api/collections", headers=admin).json()
    names = [c["name"] for c in listed]
    assert names.count(mine.collection) == 1 and names.count("press") == 1
    assert {c["source"] for c in listed if c["name"] == mine.collection} == {"s"}
    # Each organisation's collection of that name holds its own faces only.
    own = {"Authorization": f"Bearer {mine.tokens[SUPERVISOR]}"}
    images = client.get("/api/images?collection=press", headers=own).json()
    faces = {f["id"] for i in images for f in i["faces"]}
    theirs_images = client.get(
        "/api/images?collection=press",
        headers={"Authorization": f"Bearer {theirs.tokens[SUPERVISOR]}"},
    )
    assert faces and theirs_images.status_code == 200
    assert not faces & {f["id"] for i in theirs_images.json() for f in i["faces"]}
    assert client.delete(f"/api/collections/{mine.collection}", headers=admin).status_code == 204
    assert client.get(f"/api/collections/{mine.collection}", headers=own).status_code == 200
