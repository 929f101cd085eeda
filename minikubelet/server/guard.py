"""Who may ask, and what a request must look like before any handler sees it.

- On a loopback listen, only requests *addressed* to a loopback name get in:
  a web page that rebinds its own DNS name to 127.0.0.1 still sends that name
  in ``Host``, so it is refused (403) before it can read pod specs.
- Off loopback, the bearer token is the protection (the agent requires one
  there); it is compared as bytes in constant time. An ``Authorization``
  header that is not printable ASCII, or is repeated, is refused (400)
  whether or not a token is set.
- Paths with ``.`` or ``..`` segments, however encoded, are refused: nothing
  here serves files, so they are only ever probes.
- Client errors raised anywhere become a v1 ``Status`` (``errors.py``).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from minikubelet.server.deps import DEPS
from minikubelet.server.errors import StatusError, shown, status_response

LOOPBACK_ONLY = web.AppKey("loopback_only", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PORT = re.compile(r"[0-9]{0,5}", re.ASCII)
_PRINTABLE = re.compile(r"[\x20-\x7e]*", re.ASCII)


def is_loopback_listen(host: str) -> bool:
    """True when the listen address only takes connections from this machine."""
    return host.lower() == "localhost" or _is_loopback_ip(host.strip("[]"))


def _is_loopback_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback_authority(value: str) -> bool:
    """``Host`` (or an absolute URI's authority) names this machine's loopback.

    Accepts ``localhost``, ``127.0.0.0/8`` and ``[::1]``, each with an optional
    port, as browsers send them; and a bare ``::1``, as aiohttp reports the host
    of an absolute-form target. Names that merely resolve to loopback do not
    count: resolving them is exactly what a rebinding attacker controls.
    """
    if value.startswith("["):
        address, sep, rest = value[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:]))):
            return False
        return ":" in address and _is_loopback_ip(address)
    if value.count(":") > 1:
        return _is_loopback_ip(value)
    name, _, port = value.partition(":")
    if not _PORT.fullmatch(port):
        return False
    name = name.lower().removesuffix(".")
    return name == "localhost" or (":" not in name and _is_loopback_ip(name))


def _token_matches(given: str, token: str) -> bool:
    # aiohttp decodes header bytes with surrogateescape; encoding back the same way gives
    # the exact bytes sent, so a non-UTF-8 header is simply a wrong token, not an error.
    try:
        sent = given.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sent, f"Bearer {token}".encode())


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StatusError as e:
        return status_response(e)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.app[LOOPBACK_ONLY]:
        # request.host is the absolute-form target's host when one was sent, else Host.
        for value in (*request.headers.getall("Host", []), request.host):
            if not is_loopback_authority(value):
                raise StatusError(
                    403,
                    f"host {shown(value)} is not allowed: this endpoint listens on loopback "
                    "and answers only requests addressed to localhost, 127.0.0.1 or [::1]",
                )
    credentials = request.headers.getall("Authorization", [])
    if len(credentials) > 1:
        raise StatusError(400, "Authorization: the header is given more than once")
    if credentials and not _PRINTABLE.fullmatch(credentials[0]):
        # RFC 9110 credentials are printable ASCII; other bytes are garbage, not a token.
        raise StatusError(400, "Authorization: the header must be printable ASCII")
    token = request.app[DEPS].auth_token
    if token and not _token_matches(credentials[0] if credentials else "", token):
        raise StatusError(401, "Unauthorized")
    if any(segment in (".", "..") for segment in request.path.split("/")):
        raise StatusError(400, f"path {shown(request.path)}: dot segments are not allowed")
    return await handler(request)
