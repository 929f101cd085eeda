"""``/pods?watch``: pod changes streamed as the API server's watch streams them.

Current pods come first as ADDED, then every change as it is published, so a
client sees a status the moment a worker sets it, without polling.
``timeoutSeconds`` ends the stream, as on the API server.

What a watcher may hold is bounded: at most ``max_watches`` streams at once
(429 past it); a watcher more than ``watch_max_lag`` changes behind gets an
ERROR event with a 410 ``Expired`` Status and the stream ends, as an expired
API watch does; one that stops reading is dropped by the write deadline
(``stream.py``); one that disconnects has its handler cancelled by aiohttp.
Each way, the subscription and the slot are released.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web

from minikubelet.server.deps import DEPS, LIMITS
from minikubelet.server.errors import StatusError, status_bytes
from minikubelet.server.stream import BoundedStream
from minikubelet.status.manager import PodChange, StatusManager

# Changes taken from the subscription per write: bounds what one write renders.
BATCH = 256


class WatchSlots:
    """How many watch streams are open, against ``max_watches``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise StatusError(
                429,
                f"too many watches: {self.limit} are open, the most this agent serves; retry later",
                retry_after=1,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


WATCH_SLOTS = web.AppKey("watch_slots", WatchSlots)


def _event(type_: bytes, body: bytes) -> bytes:
    return b'{"type":"' + type_ + b'","object":' + body + b"}\n"


def _changes(status: StatusManager, batch: list[PodChange], after: int) -> Iterator[bytes]:
    for change in batch:
        if change.resource_version > after:
            yield _event(change.type.value.encode(), status.change_json(change))


async def watch_pods(request: web.Request, timeout: int | None) -> web.StreamResponse:
    """The stream; ``timeout`` seconds long (None or 0: until the client or the agent stops)."""
    deps = request.app[DEPS]
    limits = request.app[LIMITS]
    status = deps.status
    with request.app[WATCH_SLOTS].hold():
        subscription = status.subscribe(max_lag=limits.watch_max_lag)
        try:
            snapshot_version = status.resource_version
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            stream = BoundedStream(request, response, limits.write_timeout)
            if not await stream.prepare():
                return response
            initial = (status.pod_json(uid) for uid in status.sorted_uids())
            if not await stream.write_all(
                _event(b"ADDED", body) for body in initial if body is not None
            ):
                return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        change = await subscription.next()
                except TimeoutError:
                    break
                if change is None:
                    if subscription.overrun:
                        gone = status_bytes(
                            410,
                            f"this watch fell more than {limits.watch_max_lag} changes behind; "
                            "list again, then watch",
                        )
                        if not await stream.write(_event(b"ERROR", gone)):
                            return response
                    break
                batch = [change, *subscription.pending(BATCH - 1)]
                if not await stream.write_all(_changes(status, batch, snapshot_version)):
                    return response
            await stream.finish()
            return response
        finally:
            subscription.close()
