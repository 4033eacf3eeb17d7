"""Request dependencies: the services, the engine, the actor and permission checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..engine import Engine
from ..errors import FacesearchError, ImageTooLarge
from ..frontdoor import CSRF_HEADER, resolve_actor, services_of
from ..frontdoor import SESSION_COOKIE as SESSION_COOKIE  # routes import it from here
from ..governance.auth import Actor, AuthenticationFailed, Permission, PermissionDenied
from .state import Services

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def get_engine(services: ServicesDep) -> Engine:
    return services.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


# Declares the Bearer scheme in the OpenAPI document (an "Authorize" button in /docs);
# the header itself is read by `resolve_actor`, which also accepts the session cookie.
bearer = HTTPBearer(auto_error=False, description="an API token made with POST /api/tokens")


def current_actor(
    request: Request,
    services: ServicesDep,
    _: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Actor:
    actor = resolve_actor(request, services)
    if actor is None:
        raise AuthenticationFailed(
            "log in first: send the session cookie or an 'Authorization: Bearer <token>' header"
        )
    # A cookie is sent by the browser on its own, so a request that changes
    # something must also prove it comes from our page (tokens need not).
    if actor.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), (actor.csrf_token or "").encode()):
            raise PermissionDenied(
                f"missing or wrong CSRF token: send the {CSRF_HEADER} header the page provides"
            )
    # Kept for whatever records requests later (the audit log).
    request.state.actor = actor
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]


def require(permission: Permission):
    """A dependency that lets the request through only if the actor holds `permission`."""

    def check(actor: ActorDep) -> Actor:
        actor.check(permission)
        return actor

    return Depends(check)


def body_limit(setting: str, slack: int = 64 * 1024):
    """Refuse, before reading it, a request declared larger than an `ApiSettings` limit.

    `slack` leaves room for the multipart framing and small form fields.
    """

    def check(request: Request, services: ServicesDep) -> None:
        limit = getattr(services.settings.api, setting) + slack
        declared = request.headers.get("content-length")
        if declared is None:
            return
        try:
            size = int(declared)
        except ValueError:
            raise FacesearchError("Content-Length is not a number") from None
        if size > limit:
            raise ImageTooLarge(f"the request is {size:,} bytes, above the limit of {limit:,}")

    return Depends(check)
