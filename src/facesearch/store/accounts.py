"""Organisations, users, browser sessions and API tokens: their rows and nothing else.

Secrets never reach this module in clear: it stores password hashes and the
sha256 of session and API tokens. Deciding who may do what is governance's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import now
from ..errors import Conflict, NotFound
from .database import IntegrityError
from .db import Database


@dataclass(frozen=True)
class Organisation:
    id: int
    name: str
    created_at: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    organisation_id: int
    organisation: str
    role: str
    password_hash: str
    must_change_password: bool
    active: bool
    expires_at: str | None
    created_at: str
    last_login_at: str | None


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf_token: str
    created_at: str
    expires_at: str


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    username: str
    organisation_id: int
    name: str
    prefix: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    last_used_at: str | None


_USER = (
    "SELECT u.id, u.username, u.organisation_id, o.name, u.role, u.password_hash, "
    "u.must_change_password, u.active, u.expires_at, u.created_at, u.last_login_at "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id"
)
_TOKEN = (
    "SELECT t.id, t.user_id, u.username, u.organisation_id, t.name, t.prefix, t.created_at, "
    "t.expires_at, t.revoked_at, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id"
)


def _user(row) -> User | None:
    if row is None:
        return None
    values = list(row)
    values[6], values[7] = bool(values[6]), bool(values[7])
    return User(*values)


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    # organisations

    def organisations(self) -> list[Organisation]:
        rows = self.db.conn.execute("SELECT id, name, created_at FROM organisations ORDER BY name")
        return [Organisation(*r) for r in rows]

    def organisation(self, organisation_id: int) -> Organisation:
        row = self.db.conn.execute(
            "SELECT id, name, created_at FROM organisations WHERE id = ?", (organisation_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no organisation with id {organisation_id}")
        return Organisation(*row)

    def organisation_named(self, name: str) -> Organisation | None:
        row = self.db.conn.execute(
            "SELECT id, name, created_at FROM organisations WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else Organisation(*row)

    def create_organisation(self, name: str) -> Organisation:
        try:
            with self.db.transaction() as conn:
                row = conn.execute(
                    "INSERT INTO organisations (name, created_at) VALUES (?, ?) RETURNING id",
                    (name, now()),
                ).fetchone()
        except IntegrityError:
            raise Conflict(f"organisation {name!r} already exists") from None
        return self.organisation(int(row[0]))

    # users

    def count_users(self) -> int:
        return int(self.db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def create_user(
        self, username: str, organisation_id: int, role: str, password_hash: str,
        must_change_password: bool, expires_at: str | None, created_by: int | None,
    ) -> User:  # fmt: skip
        try:
            with self.db.transaction() as conn:
                row = conn.execute(
                    "INSERT INTO users (username, organisation_id, role, password_hash, "
                    "must_change_password, expires_at, created_at, created_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (username, organisation_id, role, password_hash, int(must_change_password),
                     expires_at, now(), created_by),
                ).fetchone()  # fmt: skip
        except IntegrityError:
            raise Conflict(f"user {username!r} already exists") from None
        return self.user(int(row[0]))

    def user(self, user_id: int) -> User:
        found = _user(self.db.conn.execute(_USER + " WHERE u.id = ?", (user_id,)).fetchone())
        if found is None:
            raise NotFound(f"no user with id {user_id}")
        return found

    def user_named(self, username: str) -> User | None:
        return _user(self.db.conn.execute(_USER + " WHERE u.username = ?", (username,)).fetchone())

    def users(self, organisation_id: int | None = None) -> list[User]:
        rows = self.db.conn.execute(
            _USER + " WHERE ? IS NULL OR u.organisation_id = ? ORDER BY o.name, u.username",
            (organisation_id, organisation_id),
        )
        return [u for u in map(_user, rows) if u is not None]

    def update_user(self, user_id: int, **fields: object) -> User:
        allowed = {"role", "active", "expires_at", "password_hash", "must_change_password"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
            with self.db.transaction() as conn:
                conn.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*values, user_id))
        return self.user(user_id)

    def record_login(self, user_id: int) -> None:
        self.db.write("UPDATE users SET last_login_at = ? WHERE id = ?", (now(), user_id))

    # browser sessions

    def create_session(
        self, token_hash: str, user_id: int, csrf_token: str, expires_at: str
    ) -> None:
        self.db.write(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (token_hash, user_id, csrf_token, now(), expires_at),
        )

    def session(self, token_hash: str) -> Session | None:
        row = self.db.conn.execute(
            "SELECT user_id, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = ?",
            (token_hash,),
        ).fetchone()
        return None if row is None else Session(*row)

    def delete_session(self, token_hash: str) -> None:
        self.db.write("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def delete_sessions(self, user_id: int) -> None:
        self.db.write("DELETE FROM sessions WHERE user_id = ?", (user_id,))

    def delete_expired_sessions(self) -> int:
        deleted = self.db.write(
            "DELETE FROM sessions WHERE expires_at <= ? RETURNING token_hash", (now(),)
        )
        return len(deleted)

    # API tokens

    def create_token(
        self, user_id: int, name: str, token_hash: str, prefix: str, expires_at: str
    ) -> ApiToken:
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (user_id, name, token_hash, prefix, now(), expires_at),
            ).fetchone()
        return self.token(int(row[0]))

    def token(self, token_id: int) -> ApiToken:
        row = self.db.conn.execute(_TOKEN + " WHERE t.id = ?", (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no token with id {token_id}")
        return ApiToken(*row)

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self.db.conn.execute(_TOKEN + " WHERE t.token_hash = ?", (token_hash,)).fetchone()
        return None if row is None else ApiToken(*row)

    def tokens(
        self, user_id: int | None = None, organisation_id: int | None = None
    ) -> list[ApiToken]:
        rows = self.db.conn.execute(
            _TOKEN + " WHERE (? IS NULL OR t.user_id = ?) AND (? IS NULL OR u.organisation_id = ?)"
            " ORDER BY t.id DESC",
            (user_id, user_id, organisation_id, organisation_id),
        )
        return [ApiToken(*r) for r in rows]

    def revoke_token(self, token_id: int) -> ApiToken:
        self.db.write(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (now(), token_id),
        )
        return self.token(token_id)

    def touch_token(self, token_id: int) -> None:
        self.db.write("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now(), token_id))
