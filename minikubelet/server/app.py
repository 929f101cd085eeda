"""The status endpoint: kubelet's read-only port, readable by curl and kubectl.

``/pods`` answers from the status manager's cached JSON, so a poll costs a
join of pre-serialised pods, not a status computation. Off loopback every
request needs the bearer token (checked in constant time).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from minikubelet.config.merge import SourceError
from minikubelet.status.manager import StatusManager


class EngineProbe(Protocol):
    async def ping(self, timeout: float = 2.0) -> bool: ...

    def is_stale(self) -> bool:
        """True while the agent's view of the engine may be out of date."""
        ...


# RFC 7234 warning, as the API server sends them; kubectl prints these.
STALE_WARNING = '299 - "Docker engine unreachable: pod statuses are as last seen"'


@dataclass(frozen=True, slots=True)
class ServerDeps:
    status: StatusManager
    engine: EngineProbe
    source_errors: Callable[[], list[SourceError]]
    auth_token: str = ""
    metrics: CollectorRegistry | None = None


DEPS = web.AppKey("deps", ServerDeps)

# Kubelet serves these only on its authenticated port; the read-only port refuses them.
DEBUG_PATHS = (
    "/containerLogs",
    "/exec",
    "/run",
    "/attach",
    "/portForward",
    "/runningpods",
    "/logs",
)


@web.middleware
async def _auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    token = request.app[DEPS].auth_token
    if token:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "Unauthorized",
                    "code": 401,
                },
                status=401,
            )
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    if await deps.engine.ping():
        return web.Response(text="ok")
    return web.Response(status=503, text="docker: the engine does not answer")


async def pods(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    if request.query.get("watch", "").lower() in ("1", "true"):
        return await watch_pods(request)
    status = deps.status
    stale = deps.engine.is_stale()
    items = [status.pod_json(uid) for uid in status.sorted_uids()]
    body = b"".join(
        [
            b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":',
            b"[" + b",".join(i for i in items if i is not None) + b"]" if items else b"null",
            b',"errors":',
            json.dumps([e.to_api() for e in deps.source_errors()], separators=(",", ":")).encode(),
            b',"stale":true' if stale else b"",
            b"}",
        ]
    )
    headers = {"Warning": STALE_WARNING} if stale else None
    return web.Response(body=body, content_type="application/json", headers=headers)


async def watch_pods(request: web.Request) -> web.StreamResponse:
    """Stream pod changes as the API server's watch does: one JSON event per line.

    Current pods come first as ADDED, then every change as it is published,
    so a client sees a status the moment a worker sets it, without polling.
    ``timeoutSeconds`` ends the stream, as on the API server.
    """
    status = request.app[DEPS].status
    try:
        timeout = float(request.query.get("timeoutSeconds", "0") or 0)
    except ValueError:
        raise web.HTTPBadRequest(text="timeoutSeconds: must be a number") from None
    subscription = status.subscribe()
    try:
        snapshot_version = status.resource_version
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        initial = [status.pod_json(uid) for uid in status.sorted_uids()]
        await resp.write(b"".join(_event(b"ADDED", body) for body in initial if body is not None))
        deadline = asyncio.get_running_loop().time() + timeout if timeout > 0 else None
        while True:
            if deadline is None:
                change = await subscription.next()
            else:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    change = await asyncio.wait_for(subscription.next(), remaining)
                except TimeoutError:
                    break
            if change is None:
                break
            if change.resource_version <= snapshot_version:
                continue  # already in the initial list
            batch = [change, *subscription.pending()]
            await resp.write(
                b"".join(
                    _event(c.type.value.encode(), status.change_json(c))
                    for c in batch
                    if c.resource_version > snapshot_version
                )
            )
        await resp.write_eof()
        return resp
    finally:
        subscription.close()


def _event(type_: bytes, body: bytes) -> bytes:
    return b'{"type":"' + type_ + b'","object":' + body + b"}\n"


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[DEPS].metrics
    if registry is None:
        raise web.HTTPNotFound(text="metrics are not enabled")
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def debug_disabled(request: web.Request) -> web.Response:
    return web.Response(status=405, text="Debug endpoints are disabled.")


def make_app(deps: ServerDeps) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[DEPS] = deps

    async def end_watches(_: web.Application) -> None:
        # Lets streaming handlers return, so shutdown does not wait on them.
        deps.status.close_subscriptions()

    app.on_shutdown.append(end_watches)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/pods/", pods)
    app.router.add_get("/metrics", metrics)
    for path in DEBUG_PATHS:
        app.router.add_route("*", path, debug_disabled)
        app.router.add_route("*", path + "/{tail:.*}", debug_disabled)
    return app
