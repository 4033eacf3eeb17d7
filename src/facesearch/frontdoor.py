"""What the two HTTP front doors share: the JSON API (api/) and the web pages (web/).

Who is calling (a Bearer token or the session cookie), logging in with its
throttle and audit records, and the session cookie itself. Both doors import
this module; web/ imports nothing from api/, and the app factory (api/app.py)
mounts the pages, so the two depend one way only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request, Response

from .governance.audit import LoginFailed, LoginLocked, LoginSucceeded
from .governance.auth import Actor, AuthenticationFailed, sha256
from .store.accounts import User

if TYPE_CHECKING:
    from .api.state import Services

SESSION_COOKIE = "facesearch_session"
CSRF_HEADER = "X-CSRF-Token"


def services_of(request: Request) -> Services:
    """The services of the app answering `request` (built by `create_app`)."""
    return request.app.state.services


def resolve_actor(request: Request, services: Services) -> Actor | None:
    """The actor behind a Bearer token or a session cookie; None when neither is sent."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        return services.auth.actor_from_token(secret.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return services.auth.actor_from_session(cookie)
    return None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "api"


def set_session_cookie(response: Response, services: Services, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(services.settings.api.session_hours * 3600),
        httponly=True, samesite="strict", secure=services.settings.api.secure_cookies, path="/",
    )  # fmt: skip


def attempted_name(typed: str, known: User | None) -> str:
    """What the audit log keeps of a name typed at login: the account's name, or for
    a name no account has only a short hash (people type passwords into it)."""
    if known is not None:
        return known.username
    return "unknown:" + sha256(typed.strip().casefold())[:12]


def record_failed_login(
    services: Services, who: Actor | str | None, username: str, name: str, origin: str,
    organisation_id: int | None,
) -> None:  # fmt: skip
    """The one place a wrong password is audited (LoginFailed) and counted towards a
    lock-out (LoginLocked): at login and when a password change gives the wrong one."""
    services.record(who, LoginFailed(name), origin, organisation_id)
    for lock in services.throttle.failed(username, origin):
        key = name if lock.kind == "account" else lock.key
        services.record(None, LoginLocked(lock.kind, key, lock.seconds), origin,
                        organisation_id)  # fmt: skip


def attempt_login(services: Services, username: str, password: str, origin: str):
    """Log in unless the name or the address is locked out; failures and the locks
    they cause are audited (under the account's organisation, so its supervisors
    see them). Returns the session token and its actor."""
    services.throttle.check(username, origin)
    try:
        token, actor = services.auth.login(username, password)
    except AuthenticationFailed:
        known = services.accounts.user_named(username.strip())
        organisation_id = known.organisation_id if known else None
        record_failed_login(services, "anonymous", username, attempted_name(username, known),
                            origin, organisation_id)  # fmt: skip
        raise
    services.throttle.succeeded(username)
    services.record(actor, LoginSucceeded(actor.username), origin)
    return token, actor
