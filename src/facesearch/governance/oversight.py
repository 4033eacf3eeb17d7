"""Oversight from the audit log: usage, anomaly flags, transparency reports, CSV.

Pure functions over audit entries, so the API, the web page and the command
line give the same answers.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import datetime

from ..config import GovernanceSettings
from ..store.audit import Entry


def _details(entry: Entry) -> dict:
    return json.loads(entry.details)


def usage(entries: list[Entry]) -> dict:
    """Searches per user, per organisation and per day (UTC)."""
    searches = [e for e in entries if e.action == "search"]
    return {
        "searches": len(searches),
        "by_user": dict(Counter(e.actor for e in searches).most_common()),
        "by_organisation": {
            str(k): v for k, v in Counter(e.organisation_id for e in searches).most_common()
        },
        "by_day": dict(sorted(Counter(e.at[:10] for e in searches).items())),
        "by_purpose": dict(Counter(_details(e)["purpose"] for e in searches).most_common()),
        "by_case": dict(Counter(_details(e)["case"] for e in searches).most_common()),
    }


def anomalies(entries: list[Entry], settings: GovernanceSettings) -> list[dict]:
    """Flags for a supervisor to look at; each names the entries behind it.

    - volume: more searches by one user in one day than `volume_per_day`;
    - out_of_hours: a search outside `working_hours` (UTC);
    - repeated_face: the same probe (photo hash or stored face) searched
      `repeated_face` times or more;
    - no_follow_up: a search after which its case saw no other activity
      (no verification, view or export) by anyone."""
    ordered = sorted(entries, key=lambda e: e.seq)
    searches = [e for e in ordered if e.action == "search"]
    flags: list[dict] = []
    per_day: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in searches:
        per_day[(e.actor, e.at[:10])].append(e.seq)
    for (actor, day), seqs in per_day.items():
        if len(seqs) > settings.volume_per_day:
            flags.append({"flag": "volume", "actor": actor, "day": day, "count": len(seqs),
                          "entries": seqs})  # fmt: skip
    start, end = settings.working_hours
    for e in searches:
        hour = datetime.fromisoformat(e.at).hour
        if not start <= hour < end:
            flags.append({"flag": "out_of_hours", "actor": e.actor, "at": e.at,
                          "entries": [e.seq]})  # fmt: skip
    probes: dict[str, list[Entry]] = defaultdict(list)
    for e in searches:
        d = _details(e)
        probe = d.get("probe_sha256") or (f"face:{d['probe_face_id']}" if d.get(
            "probe_face_id") is not None else None)  # fmt: skip
        if probe:
            probes[probe].append(e)
    for probe, found in probes.items():
        if len(found) >= settings.repeated_face:
            flags.append({"flag": "repeated_face", "probe": probe[:16], "count": len(found),
                          "actors": sorted({e.actor for e in found}),
                          "entries": [e.seq for e in found]})  # fmt: skip
    case_of_search = {e.seq: _details(e)["case"] for e in searches}
    followed: set[int] = set()
    for e in ordered:
        if e.action in ("verify", "view", "export"):
            d = _details(e)
            search_seq = d.get("search_seq")
            if search_seq in case_of_search:
                followed.add(search_seq)
            case = d.get("case") or case_of_search.get(search_seq)
            if case:
                followed.update(s for s, c in case_of_search.items() if c == case and s < e.seq)
    for e in searches:
        if e.seq not in followed and not _details(e).get("access_request"):
            flags.append({"flag": "no_follow_up", "actor": e.actor, "case": case_of_search[e.seq],
                          "entries": [e.seq]})  # fmt: skip
    return flags


def transparency(entries: list[Entry]) -> dict:
    """What an organisation can publish for a period."""
    searches = [e for e in entries if e.action == "search"]
    details = [_details(e) for e in searches]
    erasures = [_details(e) for e in entries if e.action == "erase"]
    reports = [_details(e) for e in entries if e.action == "access_report"]
    delays = []
    for r in reports:
        if r.get("received_at"):
            asked = datetime.fromisoformat(r["received_at"])
            answered = datetime.fromisoformat(r["answered_at"])
            if asked.tzinfo is None:
                asked = asked.replace(tzinfo=answered.tzinfo)
            delays.append((answered - asked).total_seconds() / 86400)
    return {
        "searches": sum(1 for d in details if not d.get("access_request")),
        "users": len({e.actor for e in searches}),
        "purposes": dict(Counter(d["purpose"] for d in details).most_common()),
        "collections": sorted({c for d in details for c in d["collections"]}),
        "erasures": len(erasures),
        "faces_erased": sum(len(d["face_ids"]) for d in erasures),
        "access_requests": len(reports),
        "access_answer_days_max": round(max(delays), 2) if delays else None,
        "access_answer_days_median": round(sorted(delays)[len(delays) // 2], 2) if delays else None,
        "ingest_faces_refused_by_blocklist": sum(
            _details(e).get("blocked", 0) for e in entries if e.action == "ingest_finished"),
        "retention_purges": sum(1 for e in entries if e.action == "retention_purge"),
    }  # fmt: skip


def to_csv(entries: list[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seq", "at", "actor", "organisation_id", "origin", "action", "purpose",
                     "case", "authorisation", "face_ids", "details", "hash"])  # fmt: skip
    for e in entries:
        d = _details(e)
        writer.writerow([e.seq, e.at, e.actor, e.organisation_id, e.origin, e.action,
                         d.get("purpose", ""), d.get("case", ""), d.get("authorisation") or "",
                         " ".join(map(str, d.get("face_ids", []))), e.details, e.hash])  # fmt: skip
    return buffer.getvalue()


def entry_json(entry: Entry) -> dict:
    return {**entry.__dict__, "details": _details(entry)}
