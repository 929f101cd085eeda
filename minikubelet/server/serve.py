"""The listening endpoint: the application under an ``AppRunner`` on a gated TCP site.

Request-level limits live in the application (watches, write deadlines);
connection-level ones here: the connection cap (``connections.py``), the
idle keep-alive timeout, handler cancellation when a client disconnects,
and a short shutdown. Malformed HTTP is answered 400 by aiohttp's parser;
it is logged at DEBUG without a traceback, since it says nothing about the
agent and a flood of it must not flood the log.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from minikubelet.server.app import make_app
from minikubelet.server.connections import ConnectionGate, GatedSite, connection_limit
from minikubelet.server.deps import ServerDeps, ServerLimits
from minikubelet.server.guard import is_loopback_listen

__all__ = ["ServerDeps", "ServerLimits", "serve"]

log = logging.getLogger(__name__)

# aiohttp's request handlers log here (the ``logger`` handler argument).
HTTP_LOG = logging.getLogger("minikubelet.server.http")


class _ClientErrorsAtDebug(logging.Filter):
    """aiohttp logs each request its parser refuses with a traceback, mostly at ERROR;
    make it one DEBUG line, or nothing below DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        if not HTTP_LOG.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg = "malformed request from %s: %s"
        record.args = (*(record.args or ()), " ".join(str(error.message).split())[:200])
        record.exc_info = record.exc_text = None
        return True


HTTP_LOG.addFilter(_ClientErrorsAtDebug())


async def serve(
    deps: ServerDeps,
    host: str,
    port: int,
    *,
    limits: ServerLimits | None = None,
    tls: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serve the status endpoint on ``host:port`` until the returned runner is cleaned up.

    On a loopback ``host`` the Host header must name loopback too (DNS
    rebinding). With ``tls`` (``tls.py``) every request but /healthz must
    authenticate; without, on loopback, only the sensitive paths do
    (``guard.py``). Settings refuse a plain listen off loopback.
    """
    limits = limits or ServerLimits()
    app = make_app(deps, limits=limits, loopback_only=is_loopback_listen(host))
    gate = ConnectionGate(connection_limit(limits.max_connections), tls=tls)

    async def reset_refused(_: web.Application) -> None:
        gate.close()

    app.on_shutdown.append(reset_refused)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        logger=HTTP_LOG,
        # A client that disconnects cancels its handler: a watch ends at once, not at its
        # next write.
        handler_cancellation=True,
        keepalive_timeout=limits.keepalive_timeout,
        shutdown_timeout=limits.shutdown_timeout,
    )
    await runner.setup()
    try:
        await GatedSite(runner, host, port, gate=gate).start()
    except BaseException:
        await runner.cleanup()
        raise
    if gate.limit < limits.max_connections:
        log.info(
            "at most %d connections (half the open-file limit, below the %d wanted)",
            gate.limit,
            limits.max_connections,
        )
    return runner
