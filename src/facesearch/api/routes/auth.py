"""Log in and out, who am I, change my password."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from ...errors import FacesearchError
from ...frontdoor import attempt_login, client_address, record_failed_login, set_session_cookie
from ...governance.auth import Actor, AuthenticationFailed, Permission
from ..deps import SESSION_COOKIE, ActorDep, ServicesDep, require
from ..schemas import LoginIn, LoginOut, Me, PasswordChange

router = APIRouter(prefix="/api/auth", tags=["auth"])


def me(actor: Actor) -> Me:
    return Me(
        id=actor.user_id, username=actor.username, organisation=actor.organisation,
        role=actor.role.value, permissions=sorted(p.value for p in actor.permissions),
        must_change_password=actor.must_change_password, via=actor.via,
    )  # fmt: skip


@router.post("/login", response_model=LoginOut)
def login(body: LoginIn, request: Request, response: Response, services: ServicesDep) -> LoginOut:
    """Start a browser session: sets an HttpOnly cookie and returns the CSRF token
    to send as X-CSRF-Token with every request that changes something. Too many
    failures lock the name (or the client address) for a while: 429 with Retry-After."""
    token, actor = attempt_login(services, body.username, body.password, client_address(request))
    set_session_cookie(response, services, token)
    return LoginOut(csrf_token=actor.csrf_token or "", me=me(actor))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, actor: ActorDep, services: ServicesDep) -> None:
    """End this browser session (a token stays valid until revoked)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if actor.via == "session" and cookie:
        services.auth.logout(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=Me)
def who_am_i(actor: ActorDep) -> Me:
    return me(actor)


@router.post("/password", response_model=Me)
def change_password(
    body: PasswordChange, request: Request, response: Response, services: ServicesDep,
    actor: Actor = require(Permission.ACCOUNT),
) -> Me:  # fmt: skip
    """Replace one's password; every session ends, and this one is renewed."""
    user = services.accounts.user(actor.user_id)
    origin = client_address(request)
    # A stolen session must not become a way to guess the password.
    services.throttle.check(user.username, origin)
    if not services.auth.verify_password(user, body.current_password):
        record_failed_login(services, actor, user.username, user.username, origin,
                            actor.organisation_id)  # fmt: skip
        raise AuthenticationFailed("the current password is wrong")
    if body.new_password == body.current_password:
        raise FacesearchError("the new password must differ from the current one")
    services.auth.set_password(user, body.new_password)
    if actor.via == "session":
        token, actor = services.auth.login(user.username, body.new_password)
        set_session_cookie(response, services, token)
        response.headers["X-CSRF-Token"] = actor.csrf_token or ""
        return me(actor)
    return me(services.auth.actor_for(services.accounts.user(user.id), actor.via, None))
