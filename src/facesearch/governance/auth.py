"""Actors, roles and permissions, passwords, browser sessions and API tokens.

The role → permission table below is the one place that says who may do what;
every front door asks `Actor.can(permission)` before it calls the engine.
Data (collections, images, faces, jobs, searches) is always scoped to the
actor's own organisation; administrators manage accounts across organisations.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..config import ApiSettings
from ..errors import FacesearchError
from ..store.accounts import Accounts, ApiToken, User


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    SUPERVISOR = "supervisor"
    INVESTIGATOR = "investigator"
    AUDITOR = "auditor"


class Permission(StrEnum):
    ACCOUNT = "account"  # one's own password and API tokens
    COLLECTIONS_READ = "collections:read"
    COLLECTIONS_WRITE = "collections:write"  # create, change retention, delete
    INGEST = "ingest"
    JOBS_READ = "jobs:read"
    SEARCH = "search"
    FACES_READ = "faces:read"  # images, faces and thumbnails
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    ORGANISATIONS_MANAGE = "organisations:manage"
    TOKENS_MANAGE = "tokens:manage"  # every user's tokens
    AUDIT_READ = "audit:read"
    RIGHTS = "rights"  # data-subject access reports and erasure
    # Naming, merging, splitting, hiding persons, undoing that, reclustering (people/).
    PEOPLE = "people"
    METRICS_READ = "metrics:read"


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    # Runs the installation; does not search people (separation of duties).
    Role.ADMINISTRATOR: frozenset({
        P.ACCOUNT, P.COLLECTIONS_READ, P.COLLECTIONS_WRITE, P.INGEST, P.JOBS_READ,
        P.USERS_READ, P.USERS_MANAGE, P.ORGANISATIONS_MANAGE, P.TOKENS_MANAGE, P.METRICS_READ,
    }),
    # Searches like an investigator and oversees the organisation's use.
    # Person operations go with seeing faces: those who search and verify leads decide
    # who is who; administrators and auditors never see a face, so never decide either.
    Role.SUPERVISOR: frozenset({
        P.ACCOUNT, P.COLLECTIONS_READ, P.INGEST, P.JOBS_READ, P.SEARCH, P.FACES_READ,
        P.USERS_READ, P.AUDIT_READ, P.RIGHTS, P.PEOPLE,
    }),
    Role.INVESTIGATOR: frozenset({
        P.ACCOUNT, P.COLLECTIONS_READ, P.INGEST, P.JOBS_READ, P.SEARCH, P.FACES_READ,
        P.PEOPLE,
    }),
    # Read-only oversight: sees what exists and what was done, never a face.
    Role.AUDITOR: frozenset({
        P.ACCOUNT, P.COLLECTIONS_READ, P.JOBS_READ, P.USERS_READ, P.AUDIT_READ, P.METRICS_READ,
    }),
}  # fmt: skip

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "fs_"


class AuthenticationFailed(FacesearchError):
    """No valid session or token: the person has to log in (HTTP 401)."""


class PermissionDenied(FacesearchError):
    """A known actor asked for something their role does not allow (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    user_id: int
    username: str
    organisation_id: int
    organisation: str
    role: Role
    via: str  # "session" or "token"
    must_change_password: bool = False
    csrf_token: str | None = field(default=None, repr=False)

    @property
    def permissions(self) -> frozenset[Permission]:
        # A one-time password has to be replaced before anything else.
        if self.must_change_password:
            return frozenset({Permission.ACCOUNT})
        return ROLE_PERMISSIONS[self.role]

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions

    def check(self, permission: Permission | str) -> None:
        if self.can(permission):
            return
        if self.must_change_password:
            raise PermissionDenied("change your one-time password first (POST /api/auth/password)")
        raise PermissionDenied(f"the {self.role} role does not allow {Permission(permission)}")


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The catalog's timestamp format, so stored times compare as strings."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(12)


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise FacesearchError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(username) >= 3 and username.lower() in password.lower():
        raise FacesearchError("a password must not contain the username")


def account_problem(user: User, at: datetime | None = None) -> str | None:
    """Why this account cannot be used now, or None."""
    if not user.active:
        return "this account is disabled"
    if user.expires_at is not None and user.expires_at <= stamp(at or now()):
        return f"this account expired on {user.expires_at}"
    return None


class Authenticator:
    def __init__(self, accounts: Accounts, settings: ApiSettings) -> None:
        self.accounts = accounts
        self.settings = settings
        self.hasher = PasswordHasher()
        # Unknown usernames cost as much as known ones, so timing tells nothing.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # passwords

    def hash_password(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify_password(self, user: User | None, password: str) -> bool:
        try:
            return self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # users

    def create_user(
        self, username: str, organisation_id: int, role: Role | str, password: str | None = None,
        *, must_change_password: bool = True, expires_at: datetime | None = None,
        created_by: int | None = None,
    ) -> tuple[User, str]:  # fmt: skip
        """A new account and its password (generated when none is given)."""
        username = username.strip()
        if not username or len(username) > 64 or not username.isprintable():
            raise FacesearchError("a username needs 1 to 64 printable characters")
        role = Role(role)
        if password is None:
            password = new_password()
        else:
            check_password_strength(password, username)
        if expires_at is not None and expires_at <= now():
            raise FacesearchError("an account's expiry date must be in the future")
        self.accounts.organisation(organisation_id)
        user = self.accounts.create_user(
            username, organisation_id, role.value, self.hash_password(password),
            must_change_password, None if expires_at is None else stamp(expires_at), created_by,
        )  # fmt: skip
        return user, password

    def set_password(self, user: User, password: str, *, must_change: bool = False) -> User:
        check_password_strength(password, user.username)
        updated = self.accounts.update_user(
            user.id, password_hash=self.hash_password(password), must_change_password=must_change
        )
        self.accounts.delete_sessions(user.id)
        return updated

    def ensure_first_admin(self, username: str = "admin") -> tuple[User, str] | None:
        """On a catalog with no accounts, an administrator with a one-time password."""
        if self.accounts.count_users():
            return None
        default = self.accounts.organisation_named("default")
        organisation = default or self.accounts.create_organisation("default")
        return self.create_user(username, organisation.id, Role.ADMINISTRATOR)

    # browser sessions

    def login(self, username: str, password: str) -> tuple[str, Actor]:
        """A new session token (for the cookie) and its actor."""
        user = self.accounts.user_named(username.strip())
        if not self.verify_password(user, password) or user is None:
            raise AuthenticationFailed("wrong username or password")
        problem = account_problem(user)
        if problem:
            raise AuthenticationFailed(problem)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now() + timedelta(hours=self.settings.session_hours)
        self.accounts.create_session(sha256(token), user.id, csrf, stamp(expires))
        self.accounts.record_login(user.id)
        return token, self.actor_for(user, "session", csrf)

    def logout(self, token: str) -> None:
        self.accounts.delete_session(sha256(token))

    def actor_from_session(self, token: str) -> Actor:
        session = self.accounts.session(sha256(token))
        if session is None or session.expires_at <= stamp(now()):
            raise AuthenticationFailed("your session has ended; log in again")
        user = self.accounts.user(session.user_id)
        problem = account_problem(user)
        if problem:
            raise AuthenticationFailed(problem)
        return self.actor_for(user, "session", session.csrf_token)

    # API tokens

    def create_token(self, user: User, name: str, days: int | None = None) -> tuple[str, ApiToken]:
        """A new API token, returned in clear this once, and its stored record."""
        name = name.strip()
        if not name or len(name) > 100:
            raise FacesearchError("a token needs a name of 1 to 100 characters")
        days = days or self.settings.token_days
        if not 1 <= days <= 3650:
            raise FacesearchError("a token lasts 1 to 3650 days")
        expires = now() + timedelta(days=days)
        if user.expires_at is not None:
            expires = min(expires, datetime.fromisoformat(user.expires_at))
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = self.accounts.create_token(
            user.id, name, sha256(secret), secret[: len(TOKEN_PREFIX) + 6], stamp(expires)
        )
        return secret, record

    def actor_from_token(self, secret: str) -> Actor:
        record = self.accounts.token_by_hash(sha256(secret))
        if record is None:
            raise AuthenticationFailed("unknown API token")
        if record.revoked_at is not None:
            raise AuthenticationFailed("this API token was revoked")
        if record.expires_at <= stamp(now()):
            raise AuthenticationFailed(f"this API token expired on {record.expires_at}")
        user = self.accounts.user(record.user_id)
        problem = account_problem(user)
        if problem:
            raise AuthenticationFailed(problem)
        if record.last_used_at is None or record.last_used_at < stamp(now() - timedelta(minutes=1)):
            self.accounts.touch_token(record.id)
        return self.actor_for(user, "token", None)

    @staticmethod
    def actor_for(user: User, via: str, csrf: str | None) -> Actor:
        return Actor(
            user.id, user.username, user.organisation_id, user.organisation, Role(user.role), via,
            user.must_change_password, csrf,
        )  # fmt: skip
