"""The agent's health: named checks, one per long-running part, as the kubelet's healthz.

Each part of the agent that must stay alive (the manifest source, the Docker
event stream, the pod workers, the server) registers a check here. ``/healthz``
runs them all; ``/healthz?verbose`` lists each as ``[+]name ok`` or
``[-]name failed: reason``, in kubelet's words, and ``/healthz/<name>`` runs one.

A part that *dies* does not stay here as a failed check: the agent's
supervisor takes the whole process down (see ``agent.Supervisor``), so a
failed check means a part that is alive but degraded (the engine does not
answer, the manifest directory is missing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# None when healthy, else a short reason (no secrets, no file contents).
HealthCheck = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class Health:
    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}

    def add(self, name: str, check: HealthCheck) -> None:
        if name in self._checks:
            raise ValueError(f"health check {name!r} registered twice")
        self._checks[name] = check

    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self, names: list[str] | None = None) -> list[CheckResult]:
        """Run the named checks (all by default) in registration order."""
        results = []
        for name, check in self._checks.items():
            if names is not None and name not in names:
                continue
            try:
                error = await check()
            except Exception as e:  # a check that raises reports, it never breaks /healthz
                error = f"check raised {type(e).__name__}"
            results.append(CheckResult(name, error))
        return results


async def always_ok() -> str | None:
    return None
