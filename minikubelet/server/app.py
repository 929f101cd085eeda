"""The status endpoint: kubelet's read-only port, readable by curl and kubectl.

``/pods`` answers from the status manager's cached JSON, so a poll costs a
join of pre-serialised pods, not a status computation. Requests pass the
guards first (``guard.py``: Host on loopback, the bearer token, dot
segments); bad parameters and refusals answer with a v1 ``Status``
(``errors.py``); watches are in ``watch.py``, health in ``healthz.py``, and
the listening socket with its connection limits in ``serve.py``.
"""

from __future__ import annotations

import dataclasses
import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from minikubelet.server import discovery, events, healthz, logs, nodes
from minikubelet.server import pods as api_pods
from minikubelet.server.deps import DEPS, LIMITS, EngineProbe, ServerDeps, ServerLimits
from minikubelet.server.errors import StatusError
from minikubelet.server.guard import LOOPBACK_ONLY, guard, render_errors
from minikubelet.server.podquery import parse_query
from minikubelet.server.pods import joined_items
from minikubelet.server.stream import send_body
from minikubelet.server.watch import WATCH_SLOTS, WatchSlots, watch_pods

__all__ = ["DEPS", "EngineProbe", "ServerDeps", "ServerLimits", "make_app"]

# RFC 7234 warning, as the API server sends them; kubectl prints these.
STALE_WARNING = '299 - "Docker engine unreachable: pod statuses are as last seen"'

# Kubelet serves these only on its authenticated port; the read-only port refuses them.
# /containerLogs is served (server/logs.py), behind the bearer token as the kubelet's
# authenticated port serves it.
DEBUG_PATHS = (
    "/exec",
    "/run",
    "/attach",
    "/portForward",
    "/runningpods",
    "/logs",
)


KUBELET_LIST = web.AppKey("kubelet_list", api_pods.ListCache)


async def pods(request: web.Request) -> web.StreamResponse:
    # The kubelet's view: plain JSON only, and a pod leaves it as soon as its source
    # drops it (the API paths show it Terminating until it is gone).
    query = dataclasses.replace(
        parse_query(request, namespace=None, hide_deleting=True), table=None
    )
    if query.watch:
        return await watch_pods(request, query)
    deps = request.app[DEPS]
    status = deps.status
    stale = deps.engine.is_stale()
    items = joined_items(status, query)
    errors = json.dumps([e.to_api() for e in deps.source_errors()], separators=(",", ":"))

    def build() -> bytes:
        return b"".join(
            [
                b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":',
                b"[" + items + b"]" if items else b"null",
                b',"errors":',
                errors.encode(),
                b',"stale":true' if stale else b"",
                b"}",
            ]
        )

    body = request.app[KUBELET_LIST].body((items, errors, stale), build)
    return await send_body(
        request,
        body,
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
        headers={"Warning": STALE_WARNING} if stale else None,
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    registry = request.app[DEPS].metrics
    if registry is None:
        raise StatusError(404, "metrics are not enabled")
    return await send_body(
        request,
        generate_latest(registry),
        content_type=CONTENT_TYPE_LATEST,
        timeout=request.app[LIMITS].write_timeout,
    )


async def debug_disabled(request: web.Request) -> web.Response:
    return web.Response(status=405, text="Debug endpoints are disabled.")


def make_app(
    deps: ServerDeps, *, limits: ServerLimits | None = None, loopback_only: bool = False
) -> web.Application:
    """The application; ``loopback_only`` turns on the Host check (``serve`` sets it from
    the listen address)."""
    app = web.Application(middlewares=[render_errors, guard])
    app[DEPS] = deps
    app[LIMITS] = limits or ServerLimits()
    app[LOOPBACK_ONLY] = loopback_only
    app[WATCH_SLOTS] = WatchSlots(app[LIMITS].max_watches)
    app[KUBELET_LIST] = api_pods.ListCache()

    async def end_watches(_: web.Application) -> None:
        # Lets streaming handlers return, so shutdown does not wait on them.
        deps.status.close_subscriptions()

    app.on_shutdown.append(end_watches)
    healthz.add_routes(app)
    app.router.add_get("/pods", pods)
    app.router.add_get("/pods/", pods)
    app.router.add_get("/metrics", metrics)
    events.add_routes(app)
    nodes.add_routes(app)
    api_pods.add_routes(app)
    discovery.add_routes(app)
    logs.add_routes(app)
    for path in DEBUG_PATHS:
        app.router.add_route("*", path, debug_disabled)
        app.router.add_route("*", path + "/{tail:.*}", debug_disabled)
    return app
