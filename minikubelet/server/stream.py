"""Writing to a client that may never read.

aiohttp's writes wait, without limit, for the socket to drain; a client that
stops reading would hold its handler, its buffers and (for a watch) its
subscription for ever. Here every write has a deadline; past it the
connection is aborted (not closed: a close would wait to flush the very
bytes nobody reads) and the handler returns, freeing all of it.

A body built on the fly (a watch's batch) goes out in slices of ``CHUNK``
bytes, each drained before the next is built, so what waits for a stalled
client is one slice plus the transport's high-water mark. A body that is
already whole in memory (a list) goes out in one write: slicing it would
save no memory, and draining each slice cost half the throughput of /pods
(bench/api.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# aiohttp drains its writer once more than 64 KiB were written since the last drain.
CHUNK = 64 * 1024
_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}


class BoundedStream:
    """One response written with a deadline on every write; ``broken`` once the client is gone."""

    def __init__(self, request: web.Request, response: web.StreamResponse, timeout: float) -> None:
        self._request = request
        self._response = response
        self._timeout = timeout
        self.broken = False

    async def prepare(self) -> bool:
        return await self._bounded(self._response.prepare(self._request))

    async def write(self, data: bytes | memoryview) -> bool:
        return await self._bounded(self._response.write(data))

    async def write_all(self, parts: Iterable[bytes]) -> bool:
        """Write ``parts`` joined, in slices of about ``CHUNK``; parts are built lazily."""
        pending: list[bytes] = []
        size = 0
        for part in parts:
            pending.append(part)
            size += len(part)
            if size >= CHUNK:
                if not await self.write(b"".join(pending)):
                    return False
                pending, size = [], 0
        return await self.write(b"".join(pending)) if pending else not self.broken

    async def finish(self, data: bytes = b"") -> bool:
        return await self._bounded(self._response.write_eof(data))

    async def _bounded(self, write: Coroutine[Any, Any, object]) -> bool:
        if self.broken:
            write.close()
            return False
        try:
            async with asyncio.timeout(self._timeout):
                await write
        except TimeoutError:
            log.info(
                "dropping %s %s from %s: it read nothing for %gs",
                self._request.method,
                self._request.path,
                self._request.remote,
                self._timeout,
            )
            self.drop()
            return False
        except ConnectionError:
            self.broken = True
            return False
        return True

    def drop(self) -> None:
        self.broken = True
        transport = self._request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: the close resets the connection, so the kernel frees at once the
            # send buffer a non-reader would otherwise keep as an orphan until it times out.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        transport.abort()


async def send_body(
    request: web.Request,
    body: bytes,
    *,
    content_type: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """A whole response, its writes bounded by ``timeout`` (see ``BoundedStream``).

    ``content_type`` is the whole header value, parameters included.
    """
    all_headers = {**(headers or {}), "Content-Type": content_type}
    if request.method == "HEAD":
        # aiohttp leaves the body out of a HEAD answer; nothing waits on the client.
        return web.Response(body=body, headers=all_headers)
    response = web.StreamResponse(headers=all_headers)
    response.content_length = len(body)
    stream = BoundedStream(request, response, timeout)
    if not await stream.prepare():
        return response
    await stream.finish(body)
    return response
