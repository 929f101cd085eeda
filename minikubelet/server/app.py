"""The status endpoint: kubelet's read-only port, readable by curl and kubectl.

``/pods`` answers from the status manager's cached JSON, so a poll costs a
join of pre-serialised pods, not a status computation. Off loopback every
request needs the bearer token (checked in constant time).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from minikubelet.config.merge import SourceError
from minikubelet.status.manager import StatusManager


class EngineProbe(Protocol):
    async def ping(self, timeout: float = 2.0) -> bool: ...


@dataclass(frozen=True, slots=True)
class ServerDeps:
    status: StatusManager
    engine: EngineProbe
    source_errors: Callable[[], list[SourceError]]
    auth_token: str = ""


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


async def pods(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    status = deps.status
    items = [status.pod_json(uid) for uid in status.sorted_uids()]
    body = b"".join(
        [
            b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":',
            b"[" + b",".join(i for i in items if i is not None) + b"]" if items else b"null",
            b',"errors":',
            json.dumps([e.to_api() for e in deps.source_errors()], separators=(",", ":")).encode(),
            b"}",
        ]
    )
    return web.Response(body=body, content_type="application/json")


async def debug_disabled(request: web.Request) -> web.Response:
    return web.Response(status=405, text="Debug endpoints are disabled.")


def make_app(deps: ServerDeps) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/pods/", pods)
    for path in DEBUG_PATHS:
        app.router.add_route("*", path, debug_disabled)
        app.router.add_route("*", path + "/{tail:.*}", debug_disabled)
    return app
