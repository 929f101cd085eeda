"""``/healthz`` in the kubelet's words, over the agent's ``Health`` registry.

The checks are ``ping`` (ok: the server answers), ``docker`` (the engine
answers a ping) and every other check the agent registered, in that order;
a ``ping`` or ``docker`` check in the registry replaces the built-in one.

- ``/healthz``: ``ok`` (200) when all pass; otherwise 503 and, as the kubelet
  always is on failure, verbose.
- ``/healthz?verbose``: one ``[+]name ok`` or ``[-]name failed: reason`` line
  per check, then ``healthz check passed`` or ``healthz check failed``.
  ``?exclude=name`` (repeatable) skips a check, as on the kubelet.
- ``/healthz/<name>``: that check alone; 404 for an unknown name.

Checks are bounded in time, and each runs at most once at a time however
many requests ask: a flood of ``/healthz`` must not queue engine pings on the
Docker thread pool that pod workers need.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from minikubelet.health import Health, HealthCheck
from minikubelet.server.deps import DEPS, LIMITS, EngineProbe
from minikubelet.server.errors import StatusError, shown

PING = "ping"
ENGINE = "docker"


class HealthChecks:
    def __init__(self, engine: EngineProbe, registry: Health | None, *, timeout: float) -> None:
        self._engine = engine
        self._registry = registry
        self._timeout = timeout
        self._running: dict[str, asyncio.Task[str | None]] = {}

    def names(self) -> list[str]:
        # Read at each request: the agent may register checks after the server starts.
        registered = self._registry.names() if self._registry is not None else []
        return [PING, ENGINE, *(name for name in registered if name not in (PING, ENGINE))]

    async def run(self, names: list[str]) -> list[tuple[str, str | None]]:
        """(name, None or the reason it failed) for each name, run concurrently."""
        errors = await asyncio.gather(*(self._shared(name) for name in names))
        return list(zip(names, errors, strict=True))

    def close(self) -> None:
        for task in self._running.values():
            task.cancel()

    async def _shared(self, name: str) -> str | None:
        task = self._running.get(name)
        if task is None:
            task = asyncio.ensure_future(self._bounded(name))
            self._running[name] = task
            task.add_done_callback(lambda done: self._forget(name, done))
        # A client that leaves cancels its wait, not the check others are waiting on.
        return await asyncio.shield(task)

    def _forget(self, name: str, task: asyncio.Task[str | None]) -> None:
        if self._running.get(name) is task:
            del self._running[name]

    async def _bounded(self, name: str) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._check(name)()
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as e:  # a broken check reports; it never breaks /healthz
            return f"check raised {type(e).__name__}"

    def _check(self, name: str) -> HealthCheck:
        if self._registry is not None and name in self._registry.names():
            registry = self._registry

            async def registered() -> str | None:
                results = await registry.run([name])
                return results[0].error if results else None

            return registered
        if name == ENGINE:
            return self._ping_engine
        return _ok

    async def _ping_engine(self) -> str | None:
        return None if await self._engine.ping() else "the engine does not answer"


async def _ok() -> str | None:
    return None


HEALTH = web.AppKey("health", HealthChecks)


def health_checks(app: web.Application) -> HealthChecks:
    deps = app[DEPS]
    checks = HealthChecks(deps.engine, deps.health, timeout=app[LIMITS].health_timeout)

    async def stop(_: web.Application) -> None:
        checks.close()

    app.on_cleanup.append(stop)
    return checks


def _line(reason: str) -> str:
    # One line per check, whatever a reason holds, so the output stays parseable.
    return " ".join(reason.split())


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=body,
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def healthz(request: web.Request) -> web.Response:
    checks = request.app[HEALTH]
    names = checks.names()
    excluded = set(request.query.getall("exclude", []))
    results = await checks.run([name for name in names if name not in excluded])
    lines = [f"[+]{name} excluded: ok" for name in names if name in excluded]
    lines += [
        f"[+]{name} ok" if error is None else f"[-]{name} failed: {_line(error)}"
        for name, error in results
    ]
    unknown = sorted(excluded.difference(names))
    if unknown:
        quoted = ",".join(shown(name) for name in unknown)
        lines.append(f"warn: some health checks cannot be excluded: no matches for {quoted}")
    failed = any(error is not None for _, error in results)
    if not failed and "verbose" not in request.query:
        return _text("ok")
    lines.append("healthz check failed" if failed else "healthz check passed")
    return _text("\n".join(lines) + "\n", 503 if failed else 200)


async def healthz_one(request: web.Request) -> web.Response:
    checks = request.app[HEALTH]
    name = request.match_info["name"]
    if name not in checks.names():
        raise StatusError(404, f"healthz: no check named {shown(name)}")
    ((_, error),) = await checks.run([name])
    if error is None:
        return _text("ok")
    return _text(f"[-]{name} failed: {_line(error)}\n", 503)


def add_routes(app: web.Application) -> None:
    app[HEALTH] = health_checks(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthz/{name}", healthz_one)
