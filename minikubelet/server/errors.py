"""Refusals as the API server words them: a v1 ``Status`` with the HTTP code.

Handlers and middlewares raise ``StatusError``; one middleware renders it,
so every refusal a client can cause has the same machine-readable shape.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Kubernetes' StatusReason for each code we answer with (and the test API server does).
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class StatusError(Exception):
    def __init__(self, code: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def status_object(code: int, message: str, *, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS[code],
        "code": code,
    }
    if retry_after is not None:
        body["details"] = {"retryAfterSeconds": retry_after}
    return body


def status_bytes(code: int, message: str, *, retry_after: int | None = None) -> bytes:
    # ASCII only: a message may quote client bytes, which must not break the JSON or the log.
    return json.dumps(
        status_object(code, message, retry_after=retry_after), separators=(",", ":")
    ).encode()


def status_response(error: StatusError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if error.code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return web.Response(
        status=error.code,
        body=status_bytes(error.code, error.message, retry_after=error.retry_after),
        content_type="application/json",
        headers=headers,
    )


def shown(value: str, limit: int = 64) -> str:
    """A client-supplied value fit to quote in a message: bounded, and escaped to ASCII."""
    clipped = value if len(value) <= limit else value[:limit] + "..."
    return ascii(clipped)


async def read_only(request: web.Request) -> web.StreamResponse:
    """Any method but GET on a resource path. The API server's words for a verb a resource
    does not offer; discovery lists none but get, list and watch."""
    raise StatusError(405, "the server does not allow this method on the requested resource")
