"""One connection to a Kubernetes API server, through ``kubernetes_asyncio``.

The library does what a client must get right and the agent should not
rewrite: the kubeconfig (server, CA data or file, client certificate and key,
token, tokenFile, exec plugins, ``insecure-skip-tls-verify``, the current
context), the TLS context, credentials on every request, and the typed
operations (paths, query parameters, the three patch content types).

Three things are done differently here, each measured (bench/cluster.py):

- Answers are taken raw (``_preload_content=False``) and parsed with ``json``.
  The library's model deserialisation costs about five times the request
  itself, and the agent only reads a few fields of each answer.
- The HTTP session is remade without ``trust_env``: with it, aiohttp looks up
  proxies and ``.netrc`` on two thread hops per request (~0.45 ms of CPU). The
  environment's proxy for the server is looked up once instead, at connect.
- Every answer that is not 2xx becomes an ``ApiError`` carrying the v1
  Status' reason and ``Retry-After``, and no answer at all (refused, reset,
  timed out, TLS failure) is ``ApiError`` with code 0: callers retry one kind.

Requests and their outcomes are counted in client-go's metric names
(``rest_client_requests_total``, ``rest_client_request_duration_seconds``),
so a kubelet's dashboards read them unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from prometheus_client import CollectorRegistry, Counter, Histogram
from yarl import URL

log = logging.getLogger(__name__)

# A request that takes longer is abandoned and retried: the kubelet's client
# timeout is 10 s too (it has no per-request default; its status manager uses this).
REQUEST_TIMEOUT = 10.0
# The largest answer read: etcd refuses objects over 1.5 MiB; a list of every pod
# of a node (110 pods) stays well under this.
MAX_BODY = 64 * 1024 * 1024
# A watch line is one object; the same bound as the library's read buffer.
MAX_WATCH_LINE = 2 * 1024 * 1024
# A 401 may mean a rotated token (tokenFile): the kubeconfig is read again, at most
# this often, whichever part of the agent was refused.
CREDENTIALS_RELOAD_PERIOD = 5.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_METHODS = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
}

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """An API request that did not succeed: ``code`` is the HTTP status, 0 when the
    server gave no answer; ``reason`` is the Status reason (``Conflict``,
    ``AlreadyExists``, ``NotFound``...) or the transport error's name."""

    def __init__(
        self, code: int, reason: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code or 'no answer'} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        """409 with any reason: a stale write, a failed precondition or AlreadyExists."""
        return self.code == 409

    @property
    def already_exists(self) -> bool:
        return self.code == 409 and self.reason == "AlreadyExists"

    @property
    def server_fault(self) -> bool:
        """The server could not answer this time (down, overloaded, throttling):
        the request was fine and is worth repeating as it is."""
        return self.code in (0, 429) or self.code >= 500


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the API server sends an integer); dates are not
    sent by it and are ignored, as client-go ignores them."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_answer(code: int, body: bytes, headers: Any) -> ApiError:
    """The ``ApiError`` of a non-2xx answer, from its v1 Status when it has one."""
    reason, message = "", ""
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict):
        reason = str(status.get("reason") or "")
        message = str(status.get("message") or "")
    if not message:
        message = body[:200].decode("utf-8", "replace").strip() or f"HTTP {code}"
    return ApiError(
        code,
        reason or f"HTTP{code}",
        message,
        retry_after=retry_after_seconds(headers.get("Retry-After") if headers else None),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's end, for whoever watches the connection's health."""

    ok: bool
    error: ApiError | None
    at: float


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "method", "host"],
            registry=registry,
        )
        self.duration = Histogram(
            "rest_client_request_duration_seconds",
            "Request latency in seconds. Broken down by verb, and host.",
            ["verb", "host"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class KubeApi:
    """The API server of one kubeconfig; use ``connect``."""

    def __init__(
        self,
        client: k8s.ApiClient,
        *,
        kubeconfig: Path,
        temp_dir: Path,
        metrics: ApiMetrics,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.client = client
        self.core = k8s.CoreV1Api(client)
        self.coordination = k8s.CoordinationV1Api(client)
        self.server = str(client.configuration.host)
        self._host = URL(self.server).host or self.server
        self._kubeconfig = kubeconfig
        self._temp_dir = temp_dir
        self._metrics = metrics
        self._clock = clock
        self.timeout = timeout
        # Told of every request's end (health, events); set by the owner.
        self.on_outcome: Callable[[Outcome], None] | None = None
        self._reloaded_at: float | None = None

    @classmethod
    async def connect(
        cls, kubeconfig: Path, *, temp_dir: Path, registry: CollectorRegistry | None
    ) -> KubeApi:
        """Read the kubeconfig (current context) and open a session to its server.

        Certificate and key *data* in the kubeconfig are written by the library to
        files (mode 0600) under ``temp_dir``, which the caller keeps private.
        Raises ``k8s_config.ConfigException`` (or OSError) on a kubeconfig that
        cannot be used.
        """
        configuration = k8s.Configuration()
        await _load(kubeconfig, configuration, temp_dir)
        if not configuration.proxy:
            try:
                proxy, _ = get_env_proxy_for_url(URL(str(configuration.host)))
            except LookupError:
                pass
            else:
                configuration.proxy = str(proxy)
        client = k8s.ApiClient(configuration)
        rest = client.rest_client
        old = rest.pool_manager
        rest.pool_manager = aiohttp.ClientSession(
            connector=old.connector, read_bufsize=2**21, trust_env=False
        )
        old.detach()
        return cls(client, kubeconfig=kubeconfig, temp_dir=temp_dir, metrics=ApiMetrics(registry))

    async def _refused_credentials(self) -> None:
        """After a 401, so that the caller's next try carries rotated credentials."""
        now = self._clock()
        if self._reloaded_at is not None and now - self._reloaded_at < CREDENTIALS_RELOAD_PERIOD:
            return
        self._reloaded_at = now
        await self.reload_credentials()

    async def reload_credentials(self) -> None:
        """Read the kubeconfig again: a 401 can mean a rotated token (tokenFile)."""
        try:
            await _load(self._kubeconfig, self.client.configuration, self._temp_dir)
        except (k8s_config.ConfigException, OSError, ValueError) as e:
            log.warning("kubeconfig %s: cannot read it again: %s", self._kubeconfig, e)

    async def close(self) -> None:
        await self.client.close()

    async def call(
        self,
        verb: str,
        operation: Callable[..., Awaitable[Any]],
        *args: Any,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run one typed operation of ``self.core`` / ``self.coordination`` and return
        the answer's JSON object; raises ApiError. ``verb`` names it in metrics
        (get, list, create, update, patch, delete)."""
        started = self._clock()
        code = "<error>"
        try:
            response = await operation(
                *args,
                _preload_content=False,
                _request_timeout=timeout or self.timeout,
                **kwargs,
            )
            async with response:
                code = str(response.status)
                body = await _read_body(response)
                if not 200 <= response.status < 300:
                    raise error_from_answer(response.status, body, response.headers)
            try:
                answer = json.loads(body) if body else {}
            except ValueError:
                raise ApiError(response.status, "BadAnswer", "the answer is not JSON") from None
            if not isinstance(answer, dict):
                raise ApiError(response.status, "BadAnswer", "the answer is not a JSON object")
        except ApiError as e:
            self._ended(verb, code, started, e)
            if e.code == 401:
                await self._refused_credentials()
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = ApiError(0, type(e).__name__, str(e) or type(e).__name__)
            self._ended(verb, code, started, error)
            raise error from None
        self._ended(verb, code, started, None)
        return answer

    async def watch(
        self, operation: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch (``{"type", "object"}``), until the server ends it.

        The library's ``Watch`` is not used: it deserialises every event into
        models and opens a second, default client of its own. An ERROR event
        raises ApiError with its Status (410 Expired: list again).
        """
        started = self._clock()
        try:
            response = await operation(
                *args,
                watch=True,
                _preload_content=False,
                # The server ends the watch (timeout_seconds); this bounds a dead peer.
                _request_timeout=aiohttp.ClientTimeout(
                    sock_connect=self.timeout,
                    sock_read=float(kwargs.get("timeout_seconds") or 300) + self.timeout,
                ),
                **kwargs,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            error = ApiError(0, type(e).__name__, str(e) or type(e).__name__)
            self._ended("watch", "<error>", started, error)
            raise error from None
        async with response:
            if not 200 <= response.status < 300:
                body = await _read_body(response)
                error = error_from_answer(response.status, body, response.headers)
                self._ended("watch", str(response.status), started, error)
                if error.code == 401:
                    await self._refused_credentials()
                raise error
            self._ended("watch", str(response.status), started, None)
            try:
                while True:
                    line = await response.content.readline()
                    if not line:
                        return
                    if len(line) > MAX_WATCH_LINE:
                        raise ApiError(0, "BadAnswer", "a watch event is too large")
                    event = _watch_event(line)
                    if event is not None:
                        yield event
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise ApiError(0, type(e).__name__, str(e) or type(e).__name__) from None

    def _ended(self, verb: str, code: str, started: float, error: ApiError | None) -> None:
        now = self._clock()
        # client-go's labels are HTTP methods: a list and a watch are GETs.
        method = HTTP_METHODS.get(verb, verb.upper())
        self._metrics.requests.labels(code, method, self._host).inc()
        self._metrics.duration.labels(method, self._host).observe(max(now - started, 0.0))
        if self.on_outcome is not None:
            # 404, 409, 422... are answers: the server works, the request was refused.
            failed = error is not None and (error.server_fault or error.code in (401, 403))
            self.on_outcome(Outcome(ok=not failed, error=error, at=now))


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole answer, up to MAX_BODY. (``content.read(n)`` is not that: it returns
    what has arrived, at most n bytes, and a list of a hundred pods comes in pieces.)"""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(response.status, "BadAnswer", f"the answer is over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _load(kubeconfig: Path, configuration: k8s.Configuration, temp_dir: Path) -> None:
    await k8s_config.load_kube_config(
        config_file=str(kubeconfig),
        client_configuration=configuration,
        # Never write back into the operator's file (the library would, for
        # refreshed credentials of some auth plugins).
        persist_config=False,
        temp_file_path=str(temp_dir),
    )
    # A tokenFile ends in a newline as often as not; the library keeps it, and a
    # header with a newline is refused. client-go trims it, so does this.
    token = configuration.api_key.get("BearerToken")
    if isinstance(token, str):
        configuration.api_key["BearerToken"] = token.strip()


def _watch_event(line: bytes) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        raise ApiError(0, "BadAnswer", "a watch event is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
        raise ApiError(0, "BadAnswer", f"a watch event has no object (it starts {line[:120]!r})")
    if event.get("type") == "ERROR":
        status = event["object"]
        raise ApiError(
            int(status.get("code") or 500),
            str(status.get("reason") or "Error"),
            str(status.get("message") or ""),
        )
    return event
