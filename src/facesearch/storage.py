"""Opening the catalog with the master key that seals its faces.

The store only receives a `Sealer`; this is where the settings' keyring from the
governance boundary is handed to it, so `store/` never imports `governance/`.
"""

from __future__ import annotations

from pathlib import Path

from .config import Settings
from .governance.crypto import Keyring
from .store.catalog import Catalog


def open_catalog(settings: Settings, check_same_thread: bool = True) -> Catalog:
    """The catalog of `settings`, with the master key it configures."""
    return Catalog(settings.catalog_location, Keyring.from_settings(settings), check_same_thread)


def open_catalog_file(path: Path, check_same_thread: bool = True) -> Catalog:
    """A SQLite catalog with the local default key: `master.key` beside it, made on first use."""
    return Catalog(path, Keyring.from_file(Path(path).parent / "master.key"), check_same_thread)
