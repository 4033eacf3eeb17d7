"""Master key handling: generated only in local mode, never silently replaced, checked."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from facesearch.config import CryptoSettings, Settings
from facesearch.governance.crypto import KeyProblem, Keyring, open_sealed, seal


def _settings(tmp_path, **values) -> Settings:
    crypto = values.pop("crypto", CryptoSettings())
    return Settings(data_dir=tmp_path / "data", crypto=crypto, **values)


def test_local_mode_generates_an_owner_only_key_once_and_reuses_it(tmp_path):
    settings = _settings(tmp_path)
    first = Keyring.from_settings(settings)
    path = settings.master_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key, wrapped = first.new_data_key(b"collection:1")
    assert Keyring.from_settings(settings).unwrap(wrapped, b"collection:1") == key


def test_production_mode_refuses_to_start_without_a_configured_key(tmp_path):
    with pytest.raises(KeyProblem, match="no master key configured"):
        Keyring.from_settings(_settings(tmp_path, mode="production"))
    assert not (tmp_path / "data" / "master.key").exists()
    key = base64.b64encode(os.urandom(32)).decode()
    configured = _settings(tmp_path, mode="production", crypto=CryptoSettings(master_key=key))
    assert Keyring.from_settings(configured)
    missing = CryptoSettings(key_file=tmp_path / "elsewhere.key")
    with pytest.raises(KeyProblem, match="does not exist"):
        Keyring.from_settings(_settings(tmp_path, mode="production", crypto=missing))


def test_bad_keys_and_wrong_contexts_are_refused(tmp_path):
    with pytest.raises(KeyProblem, match="32 bytes"):
        Keyring.from_settings(_settings(tmp_path, crypto=CryptoSettings(master_key="c2hvcnQ=")))
    with pytest.raises(KeyProblem, match="not base64"):
        Keyring.from_settings(_settings(tmp_path, crypto=CryptoSettings(master_key="%%%")))
    key = os.urandom(32)
    sealed = seal(key, b"thumbnail bytes", b"thumbnail:1")
    assert open_sealed(key, sealed, b"thumbnail:1") == b"thumbnail bytes"
    # Sealed for one collection, it does not open as another's, nor with another key.
    with pytest.raises(KeyProblem):
        open_sealed(key, sealed, b"thumbnail:2")
    with pytest.raises(KeyProblem):
        open_sealed(os.urandom(32), sealed, b"thumbnail:1")
