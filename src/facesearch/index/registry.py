"""Which vector index back end an installation uses, chosen from its settings.

Like a FAISS factory string names an index, `FACESEARCH_INDEX__BACKEND` names a back
end: `embedded` (persistent.py, the default), `milvus` (milvus.py) or `flat` (flat.py);
`auto` is `milvus` when `FACESEARCH_INDEX__URI` is set and `embedded` otherwise.
Like a datasette plugin hook, a back end is a module with an `open_index(request)`
function, registered here by name (imported only when chosen, so its client library
stays optional) or by another package under the `facesearch.index_backends` entry
point group. Adding a back end is one new module and one line in `BACKENDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from ..config import Settings
from ..errors import FacesearchError
from .base import CatalogBackedIndex

# name -> "module:function"
BACKENDS: dict[str, str] = {
    "embedded": "facesearch.index.persistent:open_index",
    "milvus": "facesearch.index.milvus:open_index",
    "flat": "facesearch.index.flat:open_index",
}
ENTRY_POINTS = "facesearch.index_backends"


@dataclass(frozen=True)
class IndexRequest:
    """What a back end is opened with: the index of one embedding model."""

    settings: Settings
    model: str
    model_version: str
    dim: int
    # The index's own data key (32 bytes) for a back end that encrypts at rest; asked
    # for only by those, since making one writes to the catalog.
    data_key: Callable[[], bytes | None]

    @property
    def folder(self) -> Path:
        """Where a back end keeps files of its own."""
        return self.settings.index_dir / f"{self.model}-{self.model_version}"


Opener = Callable[[IndexRequest], CatalogBackedIndex]


def backend_name(settings: Settings) -> str:
    name = settings.index.backend
    if name == "auto":
        return "milvus" if settings.index.uri else "embedded"
    return name


def opener(name: str) -> Opener:
    target = BACKENDS.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINTS) if ep.name == name]
        if not found:
            known = sorted(BACKENDS) + sorted(ep.name for ep in entry_points(group=ENTRY_POINTS))
            raise FacesearchError(
                f"no index back end {name!r}; FACESEARCH_INDEX__BACKEND is one of "
                f"auto, {', '.join(known)}"
            )
        return found[0].load()
    module, _, function = target.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as exc:  # an optional client library (pymilvus) is missing
        raise FacesearchError(
            f"the {name} index back end needs {exc.name}: pip install -e '.[{name}]'"
        ) from exc


def open_index(request: IndexRequest) -> CatalogBackedIndex:
    return opener(backend_name(request.settings))(request)
