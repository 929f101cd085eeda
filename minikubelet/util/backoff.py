"""Back-off as a value: the kubelet's flowcontrol.Backoff, minus the clock.

A container's first failure restarts it at once; each restart after that
waits ``delay`` from the last exit (the container's finishedAt, not the
moment the agent saw it), doubling up to ``cap``.

An entry is forgotten twice the cap after its last update (the last
restart): the container counts as healthy again and its next failure
restarts at once. The kubelet has two rules for this: flowcontrol's
``hasExpired`` compares the exit time with the last update, and housekeeping
(``crashLoopBackOff.GC()`` every 2 s) drops entries whose last update is
older than twice the cap *now*. An exit is never later than now, so the
second rule decides whenever the first would, and it alone is kept: a
container that exits 9m55s after its last restart, inside a 5 min window,
is restarted once the entry is forgotten at 10 min, not 5 min after its exit.
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

    def forgotten_at(self, entry: BackOffEntry) -> float:
        """When the entry is dropped: twice the cap after its last update."""
        return entry.last_update + 2 * self.cap

    def expired(self, entry: BackOffEntry, now: float) -> bool:
        # The kubelet drops it at the first housekeeping pass after that
        # moment (within 2 s); the agent drops it at that moment, so a worker
        # woken for it finds it gone.
        return now >= self.forgotten_at(entry)

    def in_backoff_since(self, entry: BackOffEntry | None, since: float, now: float) -> bool:
        """True while ``now`` is within the entry's delay after ``since`` (the last exit)."""
        if entry is None or self.expired(entry, now):
            return False
        return now - since < entry.delay

    def retry_at(self, entry: BackOffEntry, since: float) -> float:
        """When a start held back by the exit at ``since`` may go: delay over or entry forgotten."""
        return min(since + entry.delay, self.forgotten_at(entry))

    def next(self, entry: BackOffEntry | None, now: float) -> BackOffEntry:
        """The entry after one more restart at ``now``."""
        if entry is None or self.expired(entry, now):
            return BackOffEntry(delay=self.initial, last_update=now)
        return BackOffEntry(delay=min(entry.delay * 2, self.cap), last_update=now)


@dataclass(frozen=True, slots=True)
class ExponentialDelay:
    """Delays for retrying an operation: ``initial``, doubling, capped (no jitter)."""

    initial: float
    cap: float

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.initial * float(1 << min(attempt, 32)))
