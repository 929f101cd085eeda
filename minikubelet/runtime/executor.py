"""Where asyncio meets the blocking Docker SDK, and docker-py's errors become ours.

One thread pool runs every short SDK call; its size stays within docker-py's
connection pool so no call waits for a connection. Long blocking streams (the
event stream) get their own thread and their own client, so they never hold
a pool thread. Nothing outside ``runtime/`` imports ``docker``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
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


class DockerExecutor:
    def __init__(self, base_url: str | None = None, *, pool_size: int = POOL_SIZE) -> None:
        self._base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="docker")
        self._client: docker.APIClient | None = None
        self.pool_size = pool_size

    @property
    def base_url(self) -> str | None:
        return self._base_url

    def _get_client(self) -> docker.APIClient:
        # Created in a pool thread: "version=auto" asks the engine, which blocks.
        if self._client is None:
            self._client = make_client(self._base_url, pool_size=max(10, self.pool_size + 2))
        return self._client

    async def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(client, *args, **kwargs)`` on the pool; errors come back translated."""
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

    def new_stream_client(self) -> docker.APIClient:
        """A separate client for a long stream, so it holds no pooled connection."""
        return make_client(self._base_url, timeout=CLIENT_TIMEOUT, pool_size=1)

    def reset_client(self) -> None:
        """Forget the client after the engine went away, so the API version is asked anew."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
