"""A cap on open connections, which aiohttp does not have.

aiohttp accepts every connection and leaves limits to the application; by
the time a request handler or middleware runs, the connection already holds
a descriptor and its buffers. So the cap sits in front of aiohttp's protocol
factory: ``ConnectionGate.protocol`` wraps each new connection, counts it
from ``connection_made`` to ``connection_lost`` (exact even when the loop
accepts a burst in one go), and hands it to aiohttp's ``RequestHandler``
only under the limit. Past it, the connection is told ``503`` with
``Retry-After`` and closed; it never reaches aiohttp.

A refused connection lingers up to ``REFUSED_LINGER`` seconds after the
answer, reading and discarding, so the client's request bytes do not turn
the close into a reset that would destroy the answer before it is read.
At most ``MAX_LINGERING`` do so at once; past that they are reset at once.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from typing import cast

from aiohttp import web
from aiohttp.web_server import Server

from minikubelet.server.errors import status_bytes

log = logging.getLogger(__name__)

REFUSED_LINGER = 1.0
MAX_LINGERING = 64


def _refusal() -> bytes:
    body = status_bytes(503, "too many connections to this agent; retry later", retry_after=1)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()


def connection_limit(wanted: int) -> int:
    """``wanted``, or half the open-file limit if that is lower.

    Each connection is a descriptor; the other half stays for the Docker
    socket pool, the event stream, probes, manifests and state files, which
    a connection flood must not starve.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft // 2))


# Seconds between two warnings that connections are being refused.
REPORT_PERIOD = 60.0


class ConnectionGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self._lingering: set[_Gated] = set()
        self._reported_at: float | None = None
        self._reported_refused = 0

    def protocol(self, server: Server) -> asyncio.Protocol:
        return _Gated(self, server)

    def close(self) -> None:
        """Reset the refused connections still lingering (at shutdown)."""
        for gated in list(self._lingering):
            gated.abort()

    def _admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self.refused += 1
        # At most one line a period: a flood of connections must not become a flood of lines.
        now = asyncio.get_running_loop().time()
        if self._reported_at is None or now - self._reported_at >= REPORT_PERIOD:
            log.warning(
                "refusing connections: %d are open, the limit; %d refused since the last report",
                self.open,
                self.refused - self._reported_refused,
            )
            self._reported_at, self._reported_refused = now, self.refused
        return False


class _Gated(asyncio.Protocol):
    """One connection: aiohttp's handler when admitted, a short refusal otherwise."""

    def __init__(self, gate: ConnectionGate, server: Server) -> None:
        self._gate = gate
        self._server = server
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though uvloop's does not derive from asyncio.Transport.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        gate = self._gate
        if gate._admit():
            self._inner = self._server()
            self._inner.connection_made(transport)
            return
        if len(gate._lingering) >= MAX_LINGERING:
            transport.abort()
            return
        gate._lingering.add(self)
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSED_LINGER, self.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._gate.open -= 1
            inner.connection_lost(exc)
            return
        if self._timer is not None:
            self._timer.cancel()
        self._gate._lingering.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return False  # refused: the client is done too, so close

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


# Seconds a TLS client may take to finish its handshake. The gate counts a connection
# from the end of its handshake (asyncio hands it to the protocol only then), so this is
# what bounds the connections still shaking hands.
TLS_HANDSHAKE_TIMEOUT = 10.0


class GatedSite(web.BaseSite):
    """``web.TCPSite`` with every connection passed through a ``ConnectionGate``."""

    __slots__ = ("_bound_port", "_gate", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        gate: ConnectionGate,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._gate = gate
        self._bound_port = port

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{host}:{self._bound_port}"

    @property
    def port(self) -> int:
        return self._bound_port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        gate = self._gate
        listening = await asyncio.get_running_loop().create_server(
            lambda: gate.protocol(server),
            self._host,
            self._port,
            backlog=self._backlog,
            ssl=self._ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )
        self._server = listening
        if listening.sockets:
            self._bound_port = int(listening.sockets[0].getsockname()[1])
