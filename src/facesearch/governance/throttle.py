"""Login throttling: too many failed logins lock the account name, or the client address,
for a while.

Failures are counted per name as typed (whether or not such an account exists, so a
lock-out says nothing about which names are real) and per client address (one
address trying many names). Counts and locks live in the catalog (store/logins.py):
every server process sees the same ones, and a restart forgets none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ApiSettings
from ..errors import FacesearchError
from ..store.logins import Logins


class TooManyAttempts(FacesearchError):
    """Logins are refused for a while (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(frozen=True)
class Lockout:
    """A lock just imposed: what is locked and for how many seconds."""

    kind: str  # "account" or "address"
    key: str
    seconds: float


class LoginThrottle:
    # Wall-clock seconds: the counts are shared by processes, maybe on several hosts.
    def __init__(
        self, settings: ApiSettings, logins: Logins, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.logins = logins
        self.clock = clock

    @staticmethod
    def _account(username: str) -> tuple[str, str]:
        return ("account", username.strip().casefold())

    def check(self, username: str, address: str) -> None:
        """Raise TooManyAttempts while the name or the address is locked."""
        now = self.clock()
        for key in (self._account(username), ("address", address)):
            until = self.logins.locked_until(*key)
            if until > now:
                what = "this account" if key[0] == "account" else "your address"
                raise TooManyAttempts(
                    f"too many failed logins for {what}; try again in "
                    f"{math.ceil(until - now)} seconds or ask an administrator to unlock it",
                    until - now,
                )

    def failed(self, username: str, address: str) -> list[Lockout]:
        """Count a failure; the locks it imposes (to be audited), if any."""
        now = self.clock()
        window = self.settings.login_window_minutes * 60
        lock_for = self.settings.lockout_minutes * 60
        limits = {
            "account": self.settings.login_max_failures,
            "address": self.settings.login_max_failures_per_address,
        }
        imposed = []
        for key in (self._account(username), ("address", address)):
            if self.logins.fail(*key, now, now - window, limits[key[0]], now + lock_for):
                imposed.append(Lockout(key[0], key[1], lock_for))
        return imposed

    def succeeded(self, username: str) -> None:
        """A correct password clears the name's count (not the address's)."""
        self.logins.forget(*self._account(username))

    def unlock(self, username: str) -> bool:
        """Lift a name's lock and forget its failures; whether it was locked."""
        return self.logins.unlock(*self._account(username)) > self.clock()
