"""The web pages: server-rendered shells; the data comes from the JSON API."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .. import __version__
from ..errors import FacesearchError
from ..frontdoor import (
    SESSION_COOKIE,
    attempt_login,
    client_address,
    resolve_actor,
    services_of,
    set_session_cookie,
)
from ..governance.auth import Actor, AuthenticationFailed, Permission
from ..governance.throttle import TooManyAttempts
from ..types import LEAD_NOTICE

router = APIRouter(include_in_schema=False)
# The app's services, without naming their type (it lives in api/, which mounts these pages).
ServicesDep = Annotated[Any, Depends(services_of)]
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
P = Permission
NO_STORE = {"Cache-Control": "no-store"}
# (path, label, permission needed to see it)
PAGES = (
    ("/search", "Search", P.SEARCH),
    ("/people", "People", P.FACES_READ),
    ("/collections", "Collections", P.COLLECTIONS_READ),
    ("/admin", "Accounts", P.USERS_READ),
    ("/oversight", "Oversight", P.AUDIT_READ),
    ("/account", "Account", P.ACCOUNT),
)


def _actor(request: Request, services) -> Actor | None:
    try:
        return resolve_actor(request, services)
    except AuthenticationFailed:
        return None


def _render(request: Request, name: str, actor: Actor | None, status: int = 200, **context):
    nav = [(path, label) for path, label, need in PAGES if actor and actor.can(need)]
    settings = request.app.state.services.settings
    return templates.TemplateResponse(
        request, name,
        {"actor": actor, "nav": nav, "csrf": actor.csrf_token if actor else "",
         "version": __version__, "notice": LEAD_NOTICE, "P": P,
         "max_upload_mb": settings.api.max_upload_bytes // (1024 * 1024),
         "purposes": settings.governance.purposes,
         "require_authorisation": settings.governance.require_authorisation, **context},
        status_code=status, headers=NO_STORE,
    )  # fmt: skip


def _page(request: Request, services, name: str, permission: Permission, **context) -> Response:
    actor = _actor(request, services)
    if actor is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if actor.must_change_password and name != "account.html":
        return RedirectResponse("/account", status_code=303)
    if not actor.can(permission):
        return _render(request, "forbidden.html", actor, status=403)
    return _render(request, name, actor, **context)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//host" or "https://host" would leave it.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


@router.get("/", response_class=HTMLResponse)
def home(request: Request, services: ServicesDep) -> Response:
    actor = _actor(request, services)
    if actor is None:
        return RedirectResponse("/login", status_code=303)
    for path, _, need in PAGES:
        if actor.can(need):
            return RedirectResponse(path, status_code=303)
    return RedirectResponse("/account", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep, next: str | None = None) -> Response:
    if _actor(request, services) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _render(request, "login.html", None, next=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login_form(
    request: Request, services: ServicesDep, username: str = Form(""), password: str = Form(""),
    next: str = Form("/"),
) -> Response:  # fmt: skip
    if not _same_origin(request):
        return _render(request, "login.html", None, status=403, next="/",
                       error="this form must be sent from this site")  # fmt: skip
    try:
        token, actor = attempt_login(services, username, password, client_address(request))
    except TooManyAttempts as exc:
        page = _render(request, "login.html", None, status=429, next=_safe_next(next),
                       error=str(exc), username=username)  # fmt: skip
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except FacesearchError as exc:
        return _render(request, "login.html", None, status=401, next=_safe_next(next),
                       error=str(exc), username=username)  # fmt: skip
    target = "/account" if actor.must_change_password else _safe_next(next)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, services, token)
    return response


@router.post("/logout")
def logout_form(request: Request, services: ServicesDep, csrf_token: str = Form("")) -> Response:
    actor = _actor(request, services)
    cookie = request.cookies.get(SESSION_COOKIE)
    if actor is not None and cookie and actor.via == "session":
        if not hmac.compare_digest(csrf_token.encode(), (actor.csrf_token or "").encode()):
            return _render(request, "forbidden.html", actor, status=403)
        services.auth.logout(cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "search.html", P.SEARCH)


@router.get("/people", response_class=HTMLResponse)
def people_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "people.html", P.FACES_READ)


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(person_id: int, request: Request, services: ServicesDep) -> Response:
    # The person itself comes from GET /api/people/{id}, which scopes it to the
    # organisation; the shell only carries the id.
    return _page(request, services, "person.html", P.FACES_READ, person_id=person_id)


@router.get("/collections", response_class=HTMLResponse)
def collections_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "collections.html", P.COLLECTIONS_READ)


@router.get("/oversight", response_class=HTMLResponse)
def oversight_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "oversight.html", P.AUDIT_READ)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "admin.html", P.USERS_READ)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, services: ServicesDep) -> Response:
    return _page(request, services, "account.html", P.ACCOUNT)
