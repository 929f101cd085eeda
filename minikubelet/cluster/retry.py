"""Back-off for requests to the API server: exponential, jittered, and never
sooner than the server's ``Retry-After``.

Jitter matters here: after an outage, every pod's status writer and the node's
loops would otherwise all retry on the same tick, the moment the server comes
back, which is the thundering herd that 429s are sent to stop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from minikubelet.cluster.api import ApiError


@dataclass(slots=True)
class Retry:
    """Delays for one repeated operation; ``reset`` after a success.

    Defaults are client-go's for the node's registration and lease: 200 ms
    doubling to 7 s. ``jitter`` spreads each delay over ±that fraction.
    """

    initial: float = 0.2
    cap: float = 7.0
    jitter: float = 0.2
    random: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0

    def next_delay(self, error: ApiError | None = None) -> float:
        """The wait before the next try, counting this failure."""
        base = min(self.cap, self.initial * float(1 << min(self.attempt, 32)))
        self.attempt += 1
        delay = base * (1.0 + self.jitter * (2.0 * self.random() - 1.0))
        if error is not None and error.retry_after is not None:
            # The server said when; jitter goes on top so the herd still spreads.
            delay = max(delay, error.retry_after * (1.0 + self.jitter * self.random()))
        return max(delay, 0.0)

    def reset(self) -> None:
        self.attempt = 0
