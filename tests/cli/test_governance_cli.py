"""`facesearch search --purpose/--case`, `audit …`, `rights …` and `retention purge`."""

from __future__ import annotations

import getpass
import json
import sqlite3

from typer.testing import CliRunner

from facesearch.cli import app

runner = CliRunner()


def test_the_command_line_binds_searches_logs_them_and_detects_tampering(tmp_path, cache_dir, wild):
    base = ["--data-dir", str(tmp_path / "data"), "--cache-dir", str(cache_dir), "--workers", "1"]

    def cli(*args: str, code: int = 0):
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == code, result.output + repr(result.exception)
        return result

    cli("collections", "create", "c", "--source", "s", "--legal-basis", "b")
    cli("ingest", str(wild / "img1.jpg"), str(wild / "img3.jpg"), "--collection", "c")
    probe = str(wild / "img2.jpg")
    refused = cli("search", probe, code=1)
    assert "needs a purpose" in str(refused.exception)
    found = json.loads(cli("search", probe, "--purpose", "missing person", "--case", "MP-1",
                           "--json").stdout)  # fmt: skip
    face_id = found["matches"][0]["face_id"]

    entries = json.loads(cli("audit", "list", "--json").stdout)
    assert [e["action"] for e in entries] == ["search", "ingest_finished", "ingest"]
    search = entries[0]
    assert search["actor"] == f"cli:{getpass.getuser()}" and search["origin"] == "cli"
    assert search["details"]["case"] == "MP-1" and face_id in search["details"]["face_ids"]
    csv_file = tmp_path / "audit.csv"
    cli("audit", "list", "--case", "MP-1", "--csv", str(csv_file))
    assert csv_file.read_text().count("\n") == 2  # header and the one search

    access = json.loads(cli("rights", "access", probe, "--reference", "DSR-1", "--json").stdout)
    assert [f["face_id"] for f in access["faces"]] == [face_id]
    assert [s["seq"] for s in access["faces"][0]["searches"]] == [search["seq"]]
    erased = json.loads(cli("rights", "erase", str(face_id), "--reference", "DSR-1",
                            "--json").stdout)  # fmt: skip
    assert erased == {"erased": [face_id], "images_deleted": 1, "blocklisted": 1}
    again = json.loads(cli("search", probe, "--purpose", "missing person", "--case", "MP-1",
                           "--json").stdout)  # fmt: skip
    assert face_id not in [m["face_id"] for m in again["matches"]]
    assert "nothing has outlived" in cli("retention", "purge").stdout

    assert "intact" in cli("audit", "verify").stdout
    with sqlite3.connect(tmp_path / "data" / "catalog.sqlite3") as conn:
        conn.execute("UPDATE audit_log SET details = replace(details, 'MP-1', 'MP-2') "
                     "WHERE action = 'search' AND seq = ?", (search["seq"],))  # fmt: skip
    broken = cli("audit", "verify", code=1)
    assert f"seq {search['seq']}" in broken.stdout and "BROKEN" in broken.stdout
    report = json.loads(cli("audit", "report", "--json").stdout)
    assert report["transparency"]["erasures"] == 1
    assert report["transparency"]["access_requests"] == 1
