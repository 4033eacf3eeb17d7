"""Login throttling: too many failed logins lock the account name, or the client address,
for a while.

Failures are counted per name as typed (whether or not such an account exists, so a
lock-out says nothing about which names are real) and per client address (one
address trying many names). Counts live in memory: a restart forgets them, which
costs an attacker a restart they cannot cause.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ApiSettings
from ..errors import FacesearchError


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
    def __init__(self, settings: ApiSettings, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}

    @staticmethod
    def _account(username: str) -> tuple[str, str]:
        return ("account", username.strip().casefold())

    def check(self, username: str, address: str) -> None:
        """Raise TooManyAttempts while the name or the address is locked."""
        now = self.clock()
        with self._lock:
            for key in (self._account(username), ("address", address)):
                until = self._locked_until.get(key, 0.0)
                if until > now:
                    what = "this account" if key[0] == "account" else "your address"
                    raise TooManyAttempts(
                        f"too many failed logins for {what}; try again in "
                        f"{math.ceil(until - now)} seconds or ask an administrator to unlock it",
                        until - now,
                    )
                self._locked_until.pop(key, None)

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
        with self._lock:
            for key in (self._account(username), ("address", address)):
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while times and times[0] <= now - window:
                    times.popleft()
                if len(times) >= limits[key[0]]:
                    self._locked_until[key] = now + lock_for
                    times.clear()
                    imposed.append(Lockout(key[0], key[1], lock_for))
        return imposed

    def succeeded(self, username: str) -> None:
        """A correct password clears the name's count (not the address's)."""
        with self._lock:
            self._failures.pop(self._account(username), None)

    def unlock(self, username: str) -> bool:
        """Lift a name's lock and forget its failures; whether it was locked."""
        key = self._account(username)
        with self._lock:
            self._failures.pop(key, None)
            return self._locked_until.pop(key, 0.0) > self.clock()
