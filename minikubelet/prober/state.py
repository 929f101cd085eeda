"""The kubelet's probe worker rules, as pure data: thresholds, delays, gating, holds.

One ``ProbeTracker`` follows one probe kind of one container instance. It is
told the time and what it needs to know about the container and answers
whether to probe now; it takes each probe's outcome and says when the stored
result flips. No clock, no I/O: the prober's tasks drive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from minikubelet.model.spec import Probe


class ProbeKind(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


class Result(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class Outcome(Enum):
    """What one run of a handler gave. ERROR (could not run at all) is not counted."""

    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


class Skip(Enum):
    PROBE = "probe"
    NOT_RUNNING = "not-running"
    INITIAL_DELAY = "initial-delay"
    NOT_STARTED = "not-started"
    HELD = "held"


INITIAL: dict[ProbeKind, Result] = {
    ProbeKind.READINESS: Result.FAILURE,
    ProbeKind.LIVENESS: Result.SUCCESS,
    ProbeKind.STARTUP: Result.UNKNOWN,
}


@dataclass(slots=True)
class ProbeTracker:
    kind: ProbeKind
    probe: Probe
    result: Result = Result.UNKNOWN
    # Consecutive identical outcomes, and which.
    streak: int = 0
    last: Result | None = None
    # After a liveness failure or any startup verdict: nothing more for this instance.
    held: bool = False

    def __post_init__(self) -> None:
        self.result = INITIAL[self.kind]

    def decide(self, *, now: float, running: bool, started_at: float | None, started: bool) -> Skip:
        """Whether this tick probes. ``started``: the container's startup probe passed (or none)."""
        if self.held:
            return Skip.HELD
        if not running or started_at is None:
            return Skip.NOT_RUNNING
        if self.kind is not ProbeKind.STARTUP and not started:
            return Skip.NOT_STARTED
        # Truncated like Go's int(): a start stamped a hair ahead of our clock is 0 s ago.
        if int(now - started_at) < self.probe.initial_delay_seconds:
            return Skip.INITIAL_DELAY
        return Skip.PROBE

    def not_running(self) -> bool:
        """A tick found the container not running: the result is Failure. True if it changed."""
        changed = self.result is not Result.FAILURE
        self.result = Result.FAILURE
        self.streak, self.last = 0, None
        return changed

    def record(self, outcome: Outcome) -> bool:
        """Count one outcome; True if the stored result flipped."""
        if outcome is Outcome.ERROR:
            return False
        value = Result.SUCCESS if outcome is Outcome.SUCCESS else Result.FAILURE
        if value is self.last:
            self.streak += 1
        else:
            self.last, self.streak = value, 1
        threshold = (
            self.probe.success_threshold
            if value is Result.SUCCESS
            else self.probe.failure_threshold
        )
        if self.streak < threshold or self.result is value:
            return False
        self.result = value
        if self.kind is ProbeKind.LIVENESS and value is Result.FAILURE:
            self.held = True
        if self.kind is ProbeKind.STARTUP:
            self.held = True
        return True
