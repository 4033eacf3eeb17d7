"""What one app instance holds: built in `create_app`, kept on `app.state.services`."""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..config import Settings
from ..engine import Engine
from ..governance.audit import AuditLog, Who
from ..governance.auth import Actor, Authenticator
from ..governance.throttle import LoginThrottle
from ..jobs import JobRunner
from ..store.accounts import Accounts
from ..store.catalog import Catalog
from ..store.db import Database
from ..store.jobs import Jobs
from .metrics import Metrics

# The client address of the request being answered, set by `ClientOrigin`.
client_origin: ContextVar[str] = ContextVar("client_origin", default="api")


class ClientOrigin:
    """ASGI middleware that makes the client's address known to the audit log."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            token = client_origin.set(str(scope["client"][0]))
            try:
                await self.app(scope, receive, send)
            finally:
                client_origin.reset(token)
            return
        await self.app(scope, receive, send)


@dataclass
class Services:
    settings: Settings
    # The engine holds the models and the index. Searches run on it in many threads
    # at once (it lends each one analyzer; the database gives each thread a reader).
    engine: Engine
    # The one database: the engine's catalog and every store below run on it.
    db: Database
    accounts: Accounts
    jobs: Jobs
    runner: JobRunner
    auth: Authenticator
    metrics: Metrics
    # The audit log over per-thread connections; see `record`.
    audit: AuditLog
    throttle: LoginThrottle
    # Writes through the engine's own catalog (erasure, retention purges) take turns:
    # they share one connection. Searches never take it.
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, actor: Actor | str | None, event, origin: str = "", organisation_id=None):
        """Append `event` to the audit log as done by `actor`: an account, a name
        (someone not logged in) or None (the server itself)."""
        if isinstance(actor, Actor):
            who = Who(actor.username, actor.organisation_id, origin or client_origin.get())
        elif actor is not None:
            who = Who(actor, organisation_id, origin or client_origin.get())
        else:
            who = Who("server", organisation_id, origin or "server")
        return self.audit.record(who, event)

    @property
    def catalog(self) -> Catalog:
        return self.engine.catalog
