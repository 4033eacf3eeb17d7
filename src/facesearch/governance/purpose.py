"""Purpose binding: no search without a purpose, a case and, where required, an authorisation."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import GovernanceSettings
from ..errors import FacesearchError


class PurposeRequired(FacesearchError):
    """A search came without a valid purpose, case or authorisation (HTTP 400)."""


@dataclass(frozen=True)
class SearchPurpose:
    purpose: str
    case: str
    authorisation: str | None


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
    if settings.require_authorisation and authorisation is None:
        raise PurposeRequired(
            "this installation requires an authorisation reference for every search"
        )
    canonical = next(p for p in settings.purposes if p.casefold() == purpose.casefold())
    return SearchPurpose(canonical, case[:200], authorisation and authorisation[:200])
