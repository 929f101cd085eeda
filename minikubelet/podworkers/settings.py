"""The pod workers' delays, with the kubelet's values as defaults."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from minikubelet.util.backoff import BackOffPolicy, ExponentialDelay


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    # CrashLoopBackOff: 10 s doubling to 5 min, forgotten after 10 min.
    crash_backoff: BackOffPolicy = field(default_factory=BackOffPolicy)
    # ImagePullBackOff: the same steps.
    image_backoff: BackOffPolicy = field(default_factory=BackOffPolicy)
    # Seconds before a failed sync or start is retried (kubelet: 10 s plus up to 50 % jitter).
    error_requeue: float = 10.0
    # Seconds between looks at every pod even without events (kubelet: 1 min plus jitter).
    resync_interval: float = 60.0
    # A worker whose own loop failed (a termination that raised) runs again
    # after this: 1 s doubling to 1 min.
    worker_retry: ExponentialDelay = field(
        default_factory=lambda: ExponentialDelay(initial=1.0, cap=60.0)
    )
    # The node's IP, for status.hostIP.
    host_ip: str = ""

    def requeue_delay(self) -> float:
        return _jitter(self.error_requeue)

    def resync_delay(self) -> float:
        return _jitter(self.resync_interval)


def _jitter(seconds: float) -> float:
    # Up to 50 % more, as the kubelet's wait.Jitter(d, 0.5): pods that failed
    # together do not all come back in the same instant.
    return seconds * (1 + random.random() * 0.5)
