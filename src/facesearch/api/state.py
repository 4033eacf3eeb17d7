"""What one app instance holds: built in `create_app`, kept on `app.state.services`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..config import Settings
from ..engine import Engine
from ..governance.auth import Authenticator
from ..jobs import JobRunner
from ..store.accounts import Accounts
from ..store.catalog import Catalog
from ..store.connections import ThreadConnections
from ..store.jobs import Jobs
from .metrics import Metrics


class ThreadCatalogs:
    """A catalog per thread for reads and small writes that need no models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self._all: list[Catalog] = []
        self._lock = threading.Lock()

    def get(self) -> Catalog:
        catalog = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = Catalog(self.settings.catalog_path, check_same_thread=False)
            self._local.catalog = catalog
            with self._lock:
                self._all.append(catalog)
        return catalog

    def close(self) -> None:
        with self._lock:
            for catalog in self._all:
                catalog.close()
            self._all.clear()
        self._local = threading.local()


@dataclass
class Services:
    settings: Settings
    # The engine holds the models and the in-memory index; OpenCV's models are
    # not thread-safe, so searches take turns under `engine_lock`.
    engine: Engine
    catalogs: ThreadCatalogs
    db: ThreadConnections
    accounts: Accounts
    jobs: Jobs
    runner: JobRunner
    auth: Authenticator
    metrics: Metrics
    engine_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def catalog(self) -> Catalog:
        return self.catalogs.get()
