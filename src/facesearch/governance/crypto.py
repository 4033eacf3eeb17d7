"""Keys and encryption at rest: AES-256-GCM with per-collection data keys.

A master key, kept outside the catalog (a key file or an environment
variable), wraps one random data key per collection; embeddings and
thumbnails are sealed with their collection's key. The catalog holds only
wrapped keys and ciphertext, so deleting a collection's wrapped key makes
its data unreadable (crypto-shredding) even where old pages survive on disk.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import FacesearchError

log = logging.getLogger(__name__)
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyProblem(FacesearchError):
    """A key is missing, malformed or does not open the data it should."""


def seal(key: bytes, plain: bytes, context: bytes) -> bytes:
    """nonce ‖ ciphertext ‖ tag; `context` is bound as associated data."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plain, context)


def open_sealed(key: bytes, sealed: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except Exception:
        raise KeyProblem("stored data does not open with its key (wrong master key?)") from None


class Keyring:
    """Wraps and unwraps data keys with the master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise KeyProblem(f"the master key must be {KEY_BYTES} bytes (base64 in a key file)")
        self._master = master_key

    def new_data_key(self, context: bytes) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form for storage."""
        key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        return key, seal(self._master, key, b"data-key:" + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        return open_sealed(self._master, wrapped, b"data-key:" + context)

    # The store's `Sealer`: the cipher it seals biometric data with.
    seal = staticmethod(seal)
    open = staticmethod(open_sealed)

    @classmethod
    def from_settings(cls, settings) -> Keyring:
        """The configured master key; in local mode one is made on first use."""
        crypto = settings.crypto
        if crypto.master_key is not None:
            return cls(
                _decode(crypto.master_key.get_secret_value(), "FACESEARCH_CRYPTO__MASTER_KEY")
            )
        path: Path = settings.master_key_file
        if crypto.key_file is None and settings.database_url is not None:
            # A key made on one node would wrap data keys no other node can open.
            raise KeyProblem(
                "a PostgreSQL catalog is shared by every node, so they must share its master "
                "key: set FACESEARCH_CRYPTO__KEY_FILE or FACESEARCH_CRYPTO__MASTER_KEY"
            )
        if crypto.key_file is None and settings.mode != "local" and not path.exists():
            raise KeyProblem(
                "no master key configured: set FACESEARCH_CRYPTO__KEY_FILE or "
                "FACESEARCH_CRYPTO__MASTER_KEY (outside local mode no key is generated)"
            )
        return cls.from_file(path, create=crypto.key_file is None or settings.mode == "local")

    @classmethod
    def from_file(cls, path: Path, create: bool = True) -> Keyring:
        if not path.exists():
            if not create:
                raise KeyProblem(f"the master key file {path} does not exist")
            write_key_file(path)
            log.warning(
                "generated a new master key in %s: back it up and keep it apart from the "
                "catalog; without it the stored faces cannot be read", path,
            )  # fmt: skip
        return cls(_decode(path.read_text().strip(), str(path)))


def write_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created owner-only before the key is written; never replaced silently.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyProblem(f"the master key in {where} is not base64") from None
    if len(key) != KEY_BYTES:
        raise KeyProblem(f"the master key in {where} must decode to {KEY_BYTES} bytes")
    return key
