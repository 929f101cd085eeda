"""A cap on open connections, which aiohttp does not have.

aiohttp accepts every connection and leaves limits to the application; by
the time a request handler or middleware runs, the connection already holds
a descriptor and its buffers. So the cap sits in front of aiohttp's protocol
factory: ``ConnectionGate.protocol`` wraps each new connection, counts it
from ``connection_made`` to ``connection_lost`` (exact even when the loop
accepts a burst in one go), and hands it to aiohttp's ``RequestHandler``
only under the limit. Past it, the connection is told ``503`` with
``Retry-After`` and closed; it never reaches aiohttp.

Over TLS a connection is counted from its accept, through its handshake:
a client that connects and never says hello holds a descriptor too. So
the TLS layer is put on after admission (``ConnectionGate._secure``) rather
than by the listening socket, where the loop would hand the connection
over only once the handshake is done. Past the limit a TLS connection is reset,
since a plaintext 503 means nothing to a TLS client; a handshake has
``TLS_HANDSHAKE_TIMEOUT`` to finish.

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
from asyncio import sslproto
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


# Seconds a TLS client may take to finish its handshake, counted as an open connection.
TLS_HANDSHAKE_TIMEOUT = 10


class ConnectionGate:
    def __init__(self, limit: int, *, tls: ssl.SSLContext | None = None) -> None:
        self.limit = limit
        # When set, every admitted connection is a TLS server connection with this context.
        self.tls = tls
        self.open = 0
        self.refused = 0
        self._lingering: set[_Gated] = set()
        # Admitted TLS connections still in their handshake.
        self._securing: set[asyncio.Transport] = set()
        self._reported_at: float | None = None
        self._reported_refused = 0

    def protocol(self, server: Server) -> asyncio.Protocol:
        return _Gated(self, server)

    def close(self) -> None:
        """Reset the refused connections still lingering, and stop the handshakes (at
        shutdown)."""
        for gated in list(self._lingering):
            gated.abort()
        for raw in list(self._securing):
            raw.abort()

    def _secure(self, raw: asyncio.Transport, connection: _TlsConnection) -> None:
        """Put the TLS layer between ``raw`` and ``connection``, now.

        What ``loop.start_tls`` does, but before this callback returns: uvloop
        starts reading right after ``connection_made`` whatever the protocol
        asked, so a ClientHello could otherwise reach a protocol with no TLS
        layer yet and be lost. asyncio's ``SSLProtocol`` (the one ``start_tls``
        uses on the standard loop) works over any loop's transport.
        """
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        layer = sslproto.SSLProtocol(
            loop,
            connection,
            self.tls,
            waiter,
            server_side=True,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        )
        waiter.add_done_callback(connection.handshake_done)
        self._securing.add(raw)
        waiter.add_done_callback(lambda _: self._securing.discard(raw))
        raw.set_protocol(layer)
        layer.connection_made(raw)

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
            if gate.tls is not None:
                secured = _TlsConnection(gate, self._server)
                try:
                    gate._secure(transport, secured)
                except Exception:
                    # A bug here must cost one connection, not the agent (an exception in
                    # a protocol callback reaches the loop's handler, which fails it).
                    log.exception("cannot set up TLS on a connection")
                    secured.release()
                    transport.abort()
                return
            self._inner = self._server()
            self._inner.connection_made(transport)
            return
        if gate.tls is not None:
            transport.abort()
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


class _TlsConnection(asyncio.Protocol):
    """An admitted TLS connection behind its TLS layer: aiohttp's handler once the
    handshake is done.

    It owns the connection's place in the gate, given back exactly once: when
    the connection is lost, or when its handshake fails, times out or is cut.
    """

    def __init__(self, gate: ConnectionGate, server: Server) -> None:
        self._gate = gate
        self._server = server
        self._handler: asyncio.Protocol | None = None
        self._made = False
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gate.open -= 1

    def handshake_done(self, waiter: asyncio.Future[None]) -> None:
        error = None if waiter.cancelled() else waiter.exception()
        if not self._made:
            # A client that does not speak TLS, a certificate that does not verify, a
            # timeout, a client gone mid-handshake: its failure, and common on an exposed port.
            log.debug("TLS handshake failed: %r", error)
            self.release()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._made = True
        self._handler = self._server()
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()


class GatedSite(web.BaseSite):
    """``web.TCPSite`` with every connection passed through a ``ConnectionGate``."""

    __slots__ = ("_bound_port", "_gate", "_host", "_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, gate: ConnectionGate
    ) -> None:
        # TLS, if any, is the gate's: put on after admission, not by the listening socket.
        super().__init__(runner)
        self._host = host
        self._port = port
        self._gate = gate
        self._bound_port = port

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._gate.tls else "http"
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
        )
        self._server = listening
        if listening.sockets:
            self._bound_port = int(listening.sockets[0].getsockname()[1])
