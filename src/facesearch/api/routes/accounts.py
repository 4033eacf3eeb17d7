"""Organisations, users and API tokens. No self sign-up: administrators create accounts."""

from __future__ import annotations

from fastapi import APIRouter, status

from ...errors import Conflict, NotFound
from ...governance import actions
from ...governance.auth import Actor, Permission, Role, new_password, stamp
from ..deps import ServicesDep, require
from ..schemas import (
    OrganisationCreate,
    OrganisationOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
    UserUpdate,
)
from ..scope import caller
from ..state import Services

router = APIRouter(prefix="/api", tags=["accounts"])
P = Permission


# organisations


@router.get("/organisations", response_model=list[OrganisationOut])
def list_organisations(
    services: ServicesDep, actor: Actor = require(P.USERS_READ)
) -> list[OrganisationOut]:
    """Every organisation for an administrator; one's own for anyone else."""
    organisations = services.accounts.organisations()
    if not actor.can(P.ORGANISATIONS_MANAGE):
        organisations = [o for o in organisations if o.id == actor.organisation_id]
    return [OrganisationOut(id=o.id, name=o.name, created_at=o.created_at) for o in organisations]


@router.post("/organisations", response_model=OrganisationOut, status_code=status.HTTP_201_CREATED)
def create_organisation(
    body: OrganisationCreate, services: ServicesDep,
    actor: Actor = require(P.ORGANISATIONS_MANAGE),
) -> OrganisationOut:  # fmt: skip
    created = services.accounts.create_organisation(body.name)
    return OrganisationOut(id=created.id, name=created.name, created_at=created.created_at)


# users


def _visible_user(services: Services, actor: Actor, user_id: int):
    user = services.accounts.user(user_id)
    if not actor.can(P.USERS_MANAGE) and user.organisation_id != actor.organisation_id:
        raise NotFound(f"no user with id {user_id}")
    return user


@router.get("/users", response_model=list[UserOut])
def list_users(
    services: ServicesDep, organisation_id: int | None = None,
    actor: Actor = require(P.USERS_READ),
) -> list[UserOut]:  # fmt: skip
    """Administrators see every account (or one organisation's); supervisors and
    auditors see their own organisation's."""
    if not actor.can(P.USERS_MANAGE):
        organisation_id = actor.organisation_id
    return [UserOut.of(u) for u in services.accounts.users(organisation_id)]


@router.post("/users", response_model=UserCreated, status_code=status.HTTP_201_CREATED)
def create_user(
    body: UserCreate, services: ServicesDep, actor: Actor = require(P.USERS_MANAGE)
) -> UserCreated:
    """Create an account. Without a password one is generated and returned once;
    with `expires_at` the account (a trial) stops working at that moment."""
    organisation_id = body.organisation_id or actor.organisation_id
    user, password = services.auth.create_user(
        body.username, organisation_id, body.role, body.password,
        must_change_password=body.must_change_password, expires_at=body.expires_at,
        created_by=actor.user_id,
    )  # fmt: skip
    generated = password if body.password is None else None
    actions.account_changed(caller(services, actor), user.username, f"created as {user.role}")
    return UserCreated(**UserOut.of(user).model_dump(), one_time_password=generated)


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: int, services: ServicesDep, actor: Actor = require(P.USERS_READ)) -> UserOut:
    return UserOut.of(_visible_user(services, actor, user_id))


@router.patch("/users/{user_id}", response_model=UserCreated)
def update_user(
    user_id: int, body: UserUpdate, services: ServicesDep,
    actor: Actor = require(P.USERS_MANAGE),
) -> UserCreated:  # fmt: skip
    """Change a role, disable or enable, set or clear the expiry, or reset the
    password (a new one-time password is returned once)."""
    user = services.accounts.user(user_id)
    changes: dict[str, object] = {}
    if body.role is not None:
        changes["role"] = Role(body.role).value
    if body.active is not None:
        changes["active"] = body.active
    if "expires_at" in body.model_fields_set:
        changes["expires_at"] = None if body.expires_at is None else stamp(body.expires_at)
    if user.id == actor.user_id and (
        changes.get("role", Role.ADMINISTRATOR.value) != Role.ADMINISTRATOR.value
        or changes.get("active") is False
        or changes.get("expires_at") is not None
    ):
        raise Conflict("administrators cannot demote, disable or expire their own account")
    user = services.accounts.update_user(user.id, **changes)
    if changes.get("active") is False or changes.get("expires_at") is not None:
        services.accounts.delete_sessions(user.id)
    password = None
    if body.reset_password:
        password = new_password()
        user = services.auth.set_password(user, password, must_change=True)
    change = ", ".join(f"{k}={v}" for k, v in changes.items())
    actions.account_changed(caller(services, actor), user.username,
                            change + (", password reset" if password else ""))  # fmt: skip
    return UserCreated(**UserOut.of(user).model_dump(), one_time_password=password)


@router.post("/users/{user_id}/unlock")
def unlock_user(
    user_id: int, services: ServicesDep, actor: Actor = require(P.USERS_MANAGE)
) -> dict:
    """Lift a lock-out after too many failed logins (the failures are forgotten too)."""
    user = services.accounts.user(user_id)
    was_locked = services.throttle.unlock(user.username)
    actions.account_changed(caller(services, actor), user.username, "login lock lifted")
    return {"username": user.username, "was_locked": was_locked}


# API tokens


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    services: ServicesDep, all: bool = False, actor: Actor = require(P.ACCOUNT)
) -> list[TokenOut]:
    """One's own tokens; `all=true` lists everyone's (administrators)."""
    if all:
        actor.check(P.TOKENS_MANAGE)
        return [TokenOut.of(t) for t in services.accounts.tokens()]
    return [TokenOut.of(t) for t in services.accounts.tokens(user_id=actor.user_id)]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(
    body: TokenCreate, services: ServicesDep, actor: Actor = require(P.ACCOUNT)
) -> TokenCreated:
    """A token for programs (send it as 'Authorization: Bearer …'). It is shown
    in this answer only; the server keeps its hash."""
    user_id = body.user_id or actor.user_id
    if user_id != actor.user_id:
        actor.check(P.TOKENS_MANAGE)
    owner = services.accounts.user(user_id)
    secret, record = services.auth.create_token(owner, body.name, body.days)
    actions.account_changed(caller(services, actor), owner.username, f"token {record.id} created")
    return TokenCreated(**TokenOut.of(record).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(
    token_id: int, services: ServicesDep, actor: Actor = require(P.ACCOUNT)
) -> TokenOut:
    """Revoke a token at once (one's own, or any for administrators)."""
    token = services.accounts.token(token_id)
    if token.user_id != actor.user_id and not actor.can(P.TOKENS_MANAGE):
        raise NotFound(f"no token with id {token_id}")
    revoked = services.accounts.revoke_token(token_id)
    actions.account_changed(
        caller(services, actor), f"user {token.user_id}", f"token {token_id} revoked"
    )
    return TokenOut.of(revoked)
