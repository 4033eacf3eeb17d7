"""The role → permission table, accounts, sessions and tokens against a real store."""

from datetime import timedelta

import pytest

from facesearch.config import ApiSettings
from facesearch.errors import FacesearchError
from facesearch.governance.auth import (
    ROLE_PERMISSIONS,
    Actor,
    AuthenticationFailed,
    Authenticator,
    Permission,
    PermissionDenied,
    Role,
    now,
    sha256,
    stamp,
)
from facesearch.store.accounts import Accounts
from facesearch.store.db import Database

P = Permission
# The table docs/security.md documents; a change to ROLE_PERMISSIONS must change this too.
EXPECTED = {
    Role.ADMINISTRATOR: {
        P.ACCOUNT, P.COLLECTIONS_READ, P.COLLECTIONS_WRITE, P.INGEST, P.JOBS_READ,
        P.USERS_READ, P.USERS_MANAGE, P.ORGANISATIONS_MANAGE, P.TOKENS_MANAGE, P.METRICS_READ,
    },
    Role.SUPERVISOR: {
        P.ACCOUNT, P.COLLECTIONS_READ, P.INGEST, P.JOBS_READ, P.SEARCH, P.FACES_READ,
        P.USERS_READ, P.AUDIT_READ, P.RIGHTS, P.PEOPLE,
    },
    Role.INVESTIGATOR: {
        P.ACCOUNT, P.COLLECTIONS_READ, P.INGEST, P.JOBS_READ, P.SEARCH, P.FACES_READ,
        P.PEOPLE,
    },
    Role.AUDITOR: {
        P.ACCOUNT, P.COLLECTIONS_READ, P.JOBS_READ, P.USERS_READ, P.AUDIT_READ, P.METRICS_READ,
    },
}  # fmt: skip


def test_role_permission_table_is_the_documented_one():
    assert {role: set(perms) for role, perms in ROLE_PERMISSIONS.items()} == EXPECTED
    # Every permission is held by someone, and only administrators manage accounts.
    assert set().union(*EXPECTED.values()) == set(Permission)
    for permission in (P.USERS_MANAGE, P.ORGANISATIONS_MANAGE, P.TOKENS_MANAGE):
        assert [r for r, p in EXPECTED.items() if permission in p] == [Role.ADMINISTRATOR]
    assert P.SEARCH not in EXPECTED[Role.AUDITOR] and P.FACES_READ not in EXPECTED[Role.AUDITOR]
    # Deciding who is who needs seeing the faces: never without faces:read.
    assert all(P.FACES_READ in p for p in EXPECTED.values() if P.PEOPLE in p)


def test_actor_check_explains_the_refusal_and_one_time_passwords_block_everything():
    auditor = Actor(1, "a", 1, "default", Role.AUDITOR, "token")
    with pytest.raises(PermissionDenied, match="auditor role does not allow search"):
        auditor.check(P.SEARCH)
    fresh = Actor(2, "b", 1, "default", Role.ADMINISTRATOR, "session", must_change_password=True)
    assert fresh.permissions == {P.ACCOUNT}
    with pytest.raises(PermissionDenied, match="one-time password"):
        fresh.check(P.USERS_MANAGE)


@pytest.fixture
def auth(catalog_location):
    """Accounts on SQLite, then on PostgreSQL."""
    db = Database(catalog_location)
    yield Authenticator(Accounts(db), ApiSettings(session_hours=1))
    db.close()


def _org(auth: Authenticator) -> int:
    return auth.accounts.organisation_named("default").id


def test_passwords_are_argon2_hashed_and_checked(auth):
    user, password = auth.create_user("dana", _org(auth), Role.INVESTIGATOR)
    assert user.password_hash.startswith("$argon2id$") and password not in user.password_hash
    assert user.must_change_password
    token, actor = auth.login("dana", password)
    assert actor.role is Role.INVESTIGATOR and actor.via == "session" and actor.csrf_token
    # Only the hash of the session token is stored.
    assert auth.accounts.session(sha256(token)) is not None
    assert auth.accounts.session(token) is None
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        auth.login("dana", password + "x")
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        auth.login("nobody", password)


def test_weak_passwords_and_past_expiry_are_refused(auth):
    with pytest.raises(FacesearchError, match="at least 10"):
        auth.create_user("erin", _org(auth), Role.AUDITOR, "short")
    with pytest.raises(FacesearchError, match="username"):
        auth.create_user("erin", _org(auth), Role.AUDITOR, "erin-is-my-password")
    with pytest.raises(FacesearchError, match="future"):
        auth.create_user("erin", _org(auth), Role.AUDITOR, expires_at=now() - timedelta(days=1))


def test_an_expired_trial_account_can_neither_log_in_nor_use_its_sessions_or_tokens(auth):
    user, password = auth.create_user(
        "trial", _org(auth), Role.INVESTIGATOR, must_change_password=False,
        expires_at=now() + timedelta(hours=1),
    )  # fmt: skip
    session, _ = auth.login("trial", password)
    secret, token = auth.create_token(user, "script", days=30)
    # The token never outlives the account.
    assert token.expires_at <= user.expires_at
    assert auth.actor_from_session(session).username == "trial"
    assert auth.actor_from_token(secret).username == "trial"
    auth.accounts.update_user(user.id, expires_at=stamp(now() - timedelta(seconds=1)))
    for attempt in (
        lambda: auth.login("trial", password),
        lambda: auth.actor_from_session(session),
        lambda: auth.actor_from_token(secret),
    ):
        with pytest.raises(AuthenticationFailed, match="expired"):
            attempt()


def test_disabled_accounts_revoked_and_expired_tokens_and_ended_sessions(auth):
    user, password = auth.create_user(
        "fay", _org(auth), Role.SUPERVISOR, must_change_password=False
    )
    secret, token = auth.create_token(user, "ci")
    assert secret.startswith("fs_") and token.prefix == secret[:9]
    assert auth.accounts.token_by_hash(sha256(secret)).id == token.id
    auth.accounts.revoke_token(token.id)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        auth.actor_from_token(secret)
    with pytest.raises(AuthenticationFailed, match="unknown"):
        auth.actor_from_token("fs_" + "x" * 43)

    other, record = auth.create_token(user, "old")
    auth.accounts.db.write(
        "UPDATE api_tokens SET expires_at = ? WHERE id = ?",
        (stamp(now() - timedelta(minutes=1)), record.id),
    )
    with pytest.raises(AuthenticationFailed, match="expired"):
        auth.actor_from_token(other)

    session, _ = auth.login("fay", password)
    auth.accounts.db.write(
        "UPDATE sessions SET expires_at = ?", (stamp(now() - timedelta(minutes=1)),)
    )
    with pytest.raises(AuthenticationFailed, match="session has ended"):
        auth.actor_from_session(session)
    assert auth.accounts.delete_expired_sessions() == 1

    auth.accounts.update_user(user.id, active=False)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        auth.login("fay", password)


def test_first_admin_is_created_once_with_a_one_time_password(auth):
    created = auth.ensure_first_admin()
    assert created is not None
    user, password = created
    assert user.role == "administrator" and user.must_change_password
    assert auth.ensure_first_admin() is None
    _, actor = auth.login("admin", password)
    assert actor.permissions == {P.ACCOUNT}
    changed = auth.set_password(auth.accounts.user(user.id), "a much better password")
    assert not changed.must_change_password
    _, actor = auth.login("admin", "a much better password")
    assert P.USERS_MANAGE in actor.permissions
