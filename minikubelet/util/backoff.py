"""Back-off as a value: the kubelet's flowcontrol.Backoff, minus the clock.

A container's first failure restarts it at once; each restart after that
waits ``delay`` from the last exit, doubling up to ``cap``. An entry not
touched for twice the cap has expired: the container counts as healthy again
and the next failure restarts at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackOffEntry:
    delay: float
    last_update: float


@dataclass(frozen=True, slots=True)
class BackOffPolicy:
    initial: float = 10.0
    cap: float = 300.0

    def expired(self, entry: BackOffEntry, now: float) -> bool:
        return now - entry.last_update > 2 * self.cap

    def in_backoff_since(self, entry: BackOffEntry | None, since: float, now: float) -> bool:
        """True while ``now`` is within the entry's delay after ``since`` (the last exit)."""
        if entry is None or self.expired(entry, now):
            return False
        return now - since < entry.delay

    def next(self, entry: BackOffEntry | None, now: float) -> BackOffEntry:
        """The entry after one more restart at ``now``."""
        if entry is None or self.expired(entry, now):
            return BackOffEntry(delay=self.initial, last_update=now)
        return BackOffEntry(delay=min(entry.delay * 2, self.cap), last_update=now)

    def remaining(self, entry: BackOffEntry, since: float, now: float) -> float:
        return max(0.0, since + entry.delay - now)


@dataclass(frozen=True, slots=True)
class ExponentialDelay:
    """Delays for retrying an operation: ``initial``, doubling, capped (no jitter)."""

    initial: float
    cap: float

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.initial * float(1 << min(attempt, 32)))
