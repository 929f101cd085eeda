"""What the status endpoint is given: the agent's parts it reads, and its limits.

Kept apart from the handlers so every server module can name them without
importing the application that wires the handlers together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from minikubelet.config.merge import SourceError
from minikubelet.events import EventRecorder
from minikubelet.health import Health
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.runtime.logs import LogOptions
from minikubelet.status.manager import StatusManager


class EngineProbe(Protocol):
    async def ping(self, timeout: float = 2.0) -> bool: ...

    def is_stale(self) -> bool:
        """True while the agent's view of the engine may be out of date."""
        ...


class LogStream(Protocol):
    """One container log being read (``runtime.logs.ContainerLog``)."""

    async def start(self) -> None: ...

    async def read(self) -> bytes:
        """The next piece; b"" at the end."""
        ...

    def close(self) -> None: ...


class LogSource(Protocol):
    def open_log(self, container_id: str, options: LogOptions) -> LogStream:
        """Raises TooManyLogStreamsError when every stream slot is taken."""
        ...


@dataclass(frozen=True, slots=True)
class ServerDeps:
    status: StatusManager
    engine: EngineProbe
    source_errors: Callable[[], list[SourceError]]
    auth_token: str = ""
    metrics: CollectorRegistry | None = None
    # The agent's named checks, run by /healthz beside the built-in ping and engine checks.
    health: Health | None = None
    # What /api/v1/events lists; without it those paths answer 404.
    recorder: EventRecorder | None = None
    # The node's status, for /api/v1/nodes; without it those paths answer 503.
    node: NodeStatus | None = None
    # Container logs for /api/v1/namespaces/*/pods/*/log; without it those paths answer 404.
    logs: LogSource | None = None


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """How much of the agent one client, or all of them, may hold.

    Every limit bounds memory or file descriptors that a client controls; the
    defaults leave room for any legitimate local use (a few watchers, tools
    polling /pods, Prometheus).
    """

    # Connections open at once. Past it a new connection is answered 503 and closed. The
    # effective cap is also at most half the process's open-file limit, so a flood of
    # connections leaves descriptors for Docker, probes and files (see connections.py).
    max_connections: int = 4096
    # Watch streams (/pods?watch) open at once; past it 429 TooManyRequests, as the API
    # server answers past its max-requests-inflight.
    max_watches: int = 1000
    # Pod changes a watch may fall behind before it is ended with a 410 Expired event
    # (the client relists, as after an expired API watch). Queued changes share the
    # pod objects, so a full backlog costs a pointer per change per watcher.
    watch_max_lag: int = 1000
    # Seconds one write to a client may wait for the client to read. A client that
    # stops reading is dropped once the socket buffers are full and this passes.
    write_timeout: float = 10.0
    # Seconds between BOOKMARK events on a watch that allows them (the API server sends
    # one about every minute); each tells the client the version it has seen all up to.
    bookmark_interval: float = 60.0
    # Seconds a connection may sit idle between requests, or take to send a request's
    # headers, before it is closed (the kubelet's IdleTimeout: 90 s).
    keepalive_timeout: float = 90.0
    # Seconds one health check may take before /healthz counts it failed.
    health_timeout: float = 5.0
    # Seconds shutdown waits for requests in progress before cancelling them.
    shutdown_timeout: float = 0.5


DEPS = web.AppKey("deps", ServerDeps)
LIMITS = web.AppKey("limits", ServerLimits)
