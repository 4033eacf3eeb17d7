"""The audit log's hash chain detects every edit, deletion, insertion and reordering."""

from __future__ import annotations

import json

import pytest
from postgres import open_catalog

from facesearch.governance.audit import (
    AuditLog,
    LoginSucceeded,
    SearchPerformed,
    Who,
    chain_hash,
    content_of,
)
from facesearch.store.audit import AuditStore, Entry
from facesearch.store.database import connect

WHO = Who("ines", 1, "127.0.0.1")


def _search(case: str, faces: list[int]) -> SearchPerformed:
    return SearchPerformed("missing person", case, None, "ab" * 32, None, ["press"], faces,
                           [0.9] * len(faces), 10)  # fmt: skip


@pytest.fixture
def log(catalog_location, tmp_path):
    """Six entries in a catalog on SQLite, then on PostgreSQL."""
    catalog = open_catalog(catalog_location, tmp_path)
    audit = AuditLog(AuditStore(catalog.transaction))
    for n in range(1, 7):
        audit.record(WHO, _search(f"C-{n}", [n, n + 1]) if n % 2 else LoginSucceeded("ines"))
    yield audit, catalog_location
    catalog.close()


def _sql(location, *statements: str) -> None:
    """Tamper as someone with write access to the database would, past the stores."""
    conn = connect(location)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_an_untouched_log_verifies_and_entries_carry_what_was_done(log):
    audit, _ = log
    result = audit.verify()
    assert result.ok and result.entries_checked == 6 and "intact" in result.message()
    first = next(audit.store.entries())
    assert first.prev_hash == "0" * 64 and first.actor == "ines" and first.origin == "127.0.0.1"
    details = json.loads(first.details)
    assert details["case"] == "C-1" and details["face_ids"] == [1, 2]
    assert details["probe_sha256"] == "ab" * 32 and "photo" not in details


@pytest.mark.parametrize(
    ("tamper", "position", "problem"),
    [
        # an edited field (the case reference of entry 3)
        (["UPDATE audit_log SET details = replace(details, 'C-3', 'C-9') WHERE seq = 3"], 3,
         "content"),
        # an edited actor
        (["UPDATE audit_log SET actor = 'someone else' WHERE seq = 4"], 4, "content"),
        # a deleted entry
        (["DELETE FROM audit_log WHERE seq = 3"], 3, "sequence"),
        # two entries swapped
        (["UPDATE audit_log SET seq = -2 WHERE seq = 2",
          "UPDATE audit_log SET seq = 2 WHERE seq = 3",
          "UPDATE audit_log SET seq = 3 WHERE seq = -2"], 2, "previous"),
        # an entry inserted at the end with a made-up hash
        (["INSERT INTO audit_log VALUES (7, '2030-01-01T00:00:00+00:00', 'x', 1, 'cli', 'login',"
          " '{\"username\":\"x\"}', 'f00', 'f00', NULL)"], 7, "previous"),
    ],
    ids=["edit-details", "edit-actor", "delete", "reorder", "insert"],
)  # fmt: skip
def test_any_tampering_is_detected_at_the_first_broken_entry(log, tamper, position, problem):
    audit, path = log
    _sql(path, *tamper)
    result = audit.verify()
    assert not result.ok
    assert result.broken_position == position and problem in result.problem
    assert result.entries_checked == position - 1
    assert f"#{position}" in result.message()


def test_a_rebuilt_chain_passes_without_a_key_but_not_with_the_signing_key(
    catalog_location, tmp_path
):
    """Someone who can write the catalog can recompute every hash; only the HMAC key,
    kept outside the catalog, exposes that."""
    catalog = open_catalog(catalog_location, tmp_path)
    key = b"a secret kept in a key file"
    signed = AuditLog(AuditStore(catalog.transaction), key)
    for n in range(4):
        signed.record(WHO, _search(f"C-{n}", [n]))
    assert signed.verify().ok
    # Rewrite entry 2 and recompute the whole chain from there, as a forger would.
    entries = list(signed.store.entries())
    prev = entries[0].hash
    for entry in entries[1:]:
        details = entry.details.replace("C-1", "C-X")
        forged = Entry(entry.seq, entry.at, entry.actor, entry.organisation_id, entry.origin,
                       entry.action, details, prev, "", None)  # fmt: skip
        digest = chain_hash(content_of(forged), prev)
        catalog.db.write("UPDATE audit_log SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                         (details, prev, digest, entry.seq))  # fmt: skip
        prev = digest
    assert AuditLog(AuditStore(catalog.transaction)).verify().ok
    result = signed.verify()
    assert not result.ok and result.broken_seq == 2 and "signature" in result.problem
    catalog.close()


def test_an_entry_is_written_in_the_same_transaction_as_the_action(catalog_location, tmp_path):
    catalog = open_catalog(catalog_location, tmp_path)
    audit = AuditLog(AuditStore(catalog.transaction))
    with pytest.raises(RuntimeError), catalog.transaction():
        audit.record(WHO, LoginSucceeded("ines"))
        raise RuntimeError("the action failed")
    assert list(audit.store.entries()) == []
    catalog.close()


def test_an_anchor_noted_earlier_catches_the_newest_entries_removed(log):
    audit, path = log
    head = audit.verify()
    assert head.head_seq == 6 and len(head.head_hash) == 64
    assert audit.verify((head.head_seq, head.head_hash)).ok
    _sql(path, "DELETE FROM audit_log WHERE seq >= 5")
    assert audit.verify().ok  # the shorter chain holds together by itself
    result = audit.verify((head.head_seq, head.head_hash))
    assert not result.ok and "removed from the end" in result.problem
    assert not audit.verify((4, "0" * 64)).ok
