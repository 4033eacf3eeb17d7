"""Opening the catalog with the master key that seals its faces.

The store only receives a `Sealer`; this is where the settings' keyring from the
governance boundary is handed to it, so `store/` never imports `governance/`.
"""

from __future__ import annotations

from pathlib import Path

from .config import Settings
from .governance.crypto import Keyring
from .store.catalog import Catalog
from .store.db import Database


def open_database(settings: Settings) -> Database:
    """The one database of `settings` (a SQLite file or a PostgreSQL server)."""
    return Database(settings.catalog_location)


def open_catalog(settings: Settings, db: Database | None = None) -> Catalog:
    """The catalog of `settings`, with the master key it configures: over `db` (a
    server's one database), else over a database of its own that it closes."""
    return Catalog(db or settings.catalog_location, Keyring.from_settings(settings))


def open_catalog_file(path: Path) -> Catalog:
    """A SQLite catalog with the local default key: `master.key` beside it, made on first use."""
    return Catalog(path, Keyring.from_file(Path(path).parent / "master.key"))
