"""Where asyncio meets the blocking Docker SDK, and docker-py's errors become ours.

SDK calls run in two lanes, each a thread pool with a client of its own
whose connection pool is larger than the lane's threads, so no call waits
for a connection. The quick lane (``call``) runs what answers in
milliseconds: creates, starts, inspects, kills, the health ping. The slow
lane (``call_slow``) runs what may block for seconds or minutes: stops that
wait out a grace period, pulls, imports. Eight containers ignoring SIGTERM
would otherwise hold all eight quick threads for their whole grace, and no
pod could start meanwhile. Long blocking streams (the event stream) get their
own thread and client. Nothing outside ``runtime/`` imports ``docker``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions

from minikubelet.errors import (
    ConflictError,
    ImageNotFoundError,
    MinikubeletError,
    NotFoundError,
    RuntimeCallError,
    RuntimeUnavailableError,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

POOL_SIZE = 8
# Threads are made on demand, one per call waiting at once, each parked on its
# own connection: sized so that many pods terminating together all get their
# stop signal at once (a stop queued behind others would signal late), with
# room left for pulls.
SLOW_POOL_SIZE = 32
CLIENT_TIMEOUT = 60


def make_client(
    base_url: str | None, *, timeout: int = CLIENT_TIMEOUT, pool_size: int = 10
) -> docker.APIClient:
    """A low-level client: no extra GET after create as the high-level one does."""
    kwargs: dict[str, Any] = {"version": "auto", "timeout": timeout, "max_pool_size": pool_size}
    if base_url:
        kwargs["base_url"] = base_url
    else:
        kwargs.update(docker.utils.kwargs_from_env())
        kwargs.setdefault("base_url", "unix:///var/run/docker.sock")
        kwargs["version"] = "auto"
    return docker.APIClient(**kwargs)


def translate(error: BaseException) -> MinikubeletError:
    """docker-py and transport errors as the agent's own error types."""
    if isinstance(error, MinikubeletError):
        return error
    if isinstance(error, docker.errors.ImageNotFound):
        return ImageNotFoundError(_explain(error))
    if isinstance(error, docker.errors.NotFound):
        return NotFoundError(_explain(error))
    if isinstance(error, docker.errors.APIError):
        if error.status_code == 409:
            return ConflictError(_explain(error))
        return RuntimeCallError(_explain(error))
    if isinstance(
        error, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError
    ):
        return RuntimeUnavailableError(f"Docker engine unreachable: {error}")
    if isinstance(error, docker.errors.DockerException):
        return RuntimeUnavailableError(str(error))
    return RuntimeCallError(f"{type(error).__name__}: {error}")


def _explain(error: docker.errors.APIError) -> str:
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or error)


class _Lane:
    """One thread pool and the client its threads share."""

    def __init__(self, base_url: str | None, *, threads: int, name: str) -> None:
        self._base_url = base_url
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()

    def _get_client(self) -> docker.APIClient:
        # Created in a pool thread: "version=auto" asks the engine, which blocks.
        with self._lock:
            if self._client is None:
                # More connections than threads: urllib3 would otherwise open
                # extra ones past its pool and throw them away after each call.
                self._client = make_client(self._base_url, pool_size=max(10, self._threads + 2))
            return self._client

    async def call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._pool, functools.partial(self._invoke, fn, args, kwargs)
            )
        except MinikubeletError:
            raise
        except Exception as e:
            raise translate(e) from e

    def _invoke(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        try:
            client = self._get_client()
        except Exception as e:
            raise translate(e) from e
        return fn(client, *args, **kwargs)

    def reset_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.reset_client()


class DockerExecutor:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        pool_size: int = POOL_SIZE,
        slow_pool_size: int = SLOW_POOL_SIZE,
    ) -> None:
        self._base_url = base_url
        self._quick = _Lane(base_url, threads=pool_size, name="docker")
        # docker-py lengthens a stop's read timeout by the stop's own, and a
        # pull's applies between progress messages, so one client timeout suits both.
        self._slow = _Lane(base_url, threads=slow_pool_size, name="docker-slow")
        # /healthz's ping: behind fifty pod creations in the quick lane it would
        # time out and report a healthy engine as gone.
        self._health = _Lane(base_url, threads=1, name="docker-health")

    @property
    def base_url(self) -> str | None:
        return self._base_url

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(client, *args, **kwargs)`` in the quick lane; errors come back translated."""
        return await self._quick.call(fn, args, kwargs)

    async def call_health(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """As ``call``, in a lane of its own for health checks, which nothing else can fill."""
        return await self._health.call(fn, args, kwargs)

    async def call_slow(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """As ``call``, in the lane for calls that may block for seconds (stops, pulls)."""
        return await self._slow.call(fn, args, kwargs)

    def new_stream_client(self) -> docker.APIClient:
        """A separate client for a long stream, so it holds no pooled connection."""
        return make_client(self._base_url, timeout=CLIENT_TIMEOUT, pool_size=1)

    def reset_client(self) -> None:
        """Forget the clients after the engine went away, so the API version is asked anew."""
        self._quick.reset_client()
        self._slow.reset_client()
        self._health.reset_client()

    def shutdown(self) -> None:
        self._quick.shutdown()
        self._slow.shutdown()
        self._health.shutdown()
