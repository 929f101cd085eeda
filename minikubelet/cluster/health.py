"""Whether the API server answers, for ``/healthz`` (the ``apiserver`` check) and
for the node's events.

A request the server refused (404, 409, 422) is an answer: the connection is
healthy. No answer, 429, 5xx, 401 and 403 are failures: the reporting is stuck
until the server or the credentials are fixed. The check fails after the
first such failure and passes again at the first success; the agent's liveness
does not depend on it (an API server that is down is no reason to restart).
"""

from __future__ import annotations

from collections.abc import Callable

from minikubelet.cluster.api import ApiError, Outcome
from minikubelet.events import EventRecorder, EventType, ObjectRef


class ApiHealth:
    def __init__(
        self,
        server: str,
        *,
        recorder: EventRecorder,
        node_ref: ObjectRef,
        clock: Callable[[], float],
    ) -> None:
        self._server = server
        self._recorder = recorder
        self._node_ref = node_ref
        self._clock = clock
        self.failing_since: float | None = None
        self.last_error: ApiError | None = None
        # Nothing has answered yet: not a failure, but not known healthy either.
        self.answered = False

    def observe(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.answered = True
            if self.failing_since is not None:
                self.failing_since = None
                self._recorder.record(
                    self._node_ref,
                    EventType.NORMAL,
                    "APIServerReachable",
                    f"the API server {self._server} answers again",
                )
            return
        error = outcome.error
        assert error is not None
        first = self.failing_since is None or (
            self.last_error is not None and self.last_error.code != error.code
        )
        if self.failing_since is None:
            self.failing_since = outcome.at
        self.last_error = error
        if first:
            # Recorded once per kind of failure; the recorder counts repeats of the same.
            self._recorder.record(
                self._node_ref,
                EventType.WARNING,
                "APIServerUnreachable" if error.code == 0 else "APIServerError",
                f"{self._server}: {describe(error)}",
            )

    async def check(self) -> str | None:
        if self.failing_since is None or self.last_error is None:
            return None
        since = max(self._clock() - self.failing_since, 0.0)
        return f"{self._server}: {describe(self.last_error)} (failing for {since:.0f}s)"


def describe(error: ApiError) -> str:
    if error.code == 0:
        return f"no answer: {error.message}"
    return f"{error.code} {error.reason}: {error.message}"
