"""Purpose binding: no search without a purpose, a case and, where required, an authorisation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import GovernanceSettings
from ..errors import FacesearchError


class PurposeRequired(FacesearchError):
    """A search came without a valid purpose, case or authorisation (HTTP 400)."""


PENDING = "pending"


@dataclass(frozen=True)
class SearchPurpose:
    purpose: str
    case: str
    authorisation: str | None
    pending: bool = False  # went ahead before its authorisation; see expired_pending


def bind(
    settings: GovernanceSettings, purpose: str | None, case: str | None,
    authorisation: str | None = None,
) -> SearchPurpose:  # fmt: skip
    """The search's purpose, or a refusal that says exactly what is missing."""
    allowed = ", ".join(repr(p) for p in settings.purposes)
    purpose = (purpose or "").strip()
    case = (case or "").strip()
    authorisation = (authorisation or "").strip() or None
    if not purpose:
        raise PurposeRequired(f"a search needs a purpose, one of: {allowed}")
    if purpose.casefold() not in {p.casefold() for p in settings.purposes}:
        raise PurposeRequired(f"purpose {purpose!r} is not allowed here; use one of: {allowed}")
    if not case:
        raise PurposeRequired("a search needs a case reference (the case it serves)")
    pending = authorisation is not None and authorisation.casefold() == PENDING
    if pending and settings.pending_authorisation_hours is None:
        raise PurposeRequired("pending authorisations are not allowed here; give its reference")
    if settings.require_authorisation and authorisation is None:
        hint = (
            f" (or '{PENDING}', to be confirmed within "
            f"{settings.pending_authorisation_hours:g} hours)"
            if settings.pending_authorisation_hours
            else ""
        )
        raise PurposeRequired(
            f"this installation requires an authorisation reference for every search{hint}"
        )
    canonical = next(p for p in settings.purposes if p.casefold() == purpose.casefold())
    if pending:
        return SearchPurpose(canonical, case[:200], None, pending=True)
    return SearchPurpose(canonical, case[:200], authorisation and authorisation[:200])


def expired_pending(entries, hours: float, at: datetime) -> list[int]:
    """Sequence numbers of pending searches past `hours` with neither a confirmed
    authorisation nor an earlier purge."""
    settled = {
        json.loads(e.details)["search_seq"]
        for e in entries
        if e.action in ("authorisation", "pending_expired")
    }
    limit = at - timedelta(hours=hours)
    return [
        e.seq
        for e in entries
        if e.action == "search"
        and json.loads(e.details).get("authorisation_pending")
        and e.seq not in settled
        and datetime.fromisoformat(e.at) < limit
    ]
