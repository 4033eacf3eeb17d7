"""What the store needs to keep biometric data encrypted at rest, without knowing how.

The store seals embeddings and thumbnails with per-collection data keys and keeps
only the wrapped keys. The master key and the cipher live outside the store: the
code that opens it (facesearch/storage.py) passes in the keyring that implements this.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    def new_data_key(self, context: bytes) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form, the only form that is stored."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key inside `wrapped`."""
        ...

    def seal(self, key: bytes, plain: bytes, context: bytes) -> bytes:
        """`plain` encrypted under `key`, bound to `context`."""
        ...

    def open(self, key: bytes, sealed: bytes, context: bytes) -> bytes:
        """What `seal` was given; an error when the key or the context differs."""
        ...
