"""Who may ask, and what a request must look like before any handler sees it.

Who may read what, as the kubelet's read-only port (10255) and secure port
(10250) divide it:

======================  ================================  ==============================
listen                  without credentials               needs authentication
======================  ================================  ==============================
loopback, plain HTTP    pods, events, node, /healthz,     ``SENSITIVE_PATHS`` (container
                        /metrics: what curl users read    logs, later Secret values),
                                                          when a token is configured
TLS (any address)       ``OPEN_OVER_TLS`` (/healthz)      everything else
plain, off loopback     (refused at start; in tests:      everything else, when a token
                        as TLS)                           is configured
======================  ================================  ==============================

Authentication is the bearer token (``authTokenFile``), compared as bytes in
constant time, or a client certificate that verified against
``clientCAFile`` in the handshake (``tls.py``), taken as the kubelet's x509
authenticator takes it: the subject's CN is the user, its O values the
groups, and a certificate without a CN authenticates nobody. A certificate
counts before the token, as in the API server's authenticator chain. A
bearer token that is presented and wrong is refused (401) on every path,
also where none is needed, as the API server does: a client with a stale
token learns so at once instead of reading as anonymous. There is no
authorization layer: whoever authenticates may read everything served.

Other checks, whether or not a token is set:

- On a loopback listen, only requests *addressed* to a loopback name get in:
  a web page that rebinds its own DNS name to 127.0.0.1 still sends that name
  in ``Host``, so it is refused (403) before it can read pod specs.
- An ``Authorization`` header that is not printable ASCII, or is repeated,
  is refused (400).
- Paths with ``.`` or ``..`` segments, however encoded, are refused: nothing
  here serves files, so they are only ever probes.
- Client errors raised anywhere become a v1 ``Status`` (``errors.py``); a
  401 carries ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from minikubelet.server.deps import DEPS
from minikubelet.server.errors import StatusError, shown, status_response

LOOPBACK_ONLY = web.AppKey("loopback_only", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths whose answers carry more than pod specs and status: a container's output, and
# (later) any value taken from a Secret. On a plain loopback listen these alone need the
# bearer token, when one is configured. Matched against the whole path, with repeated
# slashes collapsed; matching too much only asks for the token. A new such path is a line.
SENSITIVE_PATHS = re.compile(
    r"""
      /api/v1/namespaces/[^/]+/pods/[^/]+/log(/.*)?   # kubectl logs
    | /containerLogs(/.*)?                            # the kubelet's own log path
    | /logs(/.*)?                                     # the kubelet's node log files
    """,
    re.VERBOSE,
)

# What a TLS listen answers without credentials. Only health: liveness checks and load
# balancers probe it with no credentials. The kubelet keeps it on a port of its own
# (10248, loopback) and the API server leaves it to anonymous users
# (system:public-info-viewer); on one port this is the same. It names checks and
# their failures, nothing of any pod.
OPEN_OVER_TLS = re.compile(r"/healthz(/[^/]*)?")

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


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request authenticated as."""

    user: str
    groups: tuple[str, ...] = ()
    # "x509" or "token".
    method: str = "token"


# The bearer token names no one; this is the user it stands for.
TOKEN_USER = "minikubelet:token"


def _token_matches(given: str, token: str) -> bool:
    # aiohttp decodes header bytes with surrogateescape; encoding back the same way gives
    # the exact bytes sent, so a non-UTF-8 header is simply a wrong token, not an error.
    try:
        sent = given.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(sent, token.encode())


def certificate_identity(request: web.Request) -> Identity | None:
    """The verified client certificate's subject: CN the user, O the groups.

    ``getpeercert()`` is empty unless the certificate verified against the
    client CA in the handshake, so an unverifiable one never gets here.
    """
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    # The subject as ssl reports it: relative names, each a tuple of (key, value) pairs.
    subject = cert.get("subject", ())
    names = [
        (str(pair[0]), str(pair[1]))
        for rdn in subject
        if isinstance(rdn, tuple)
        for pair in rdn
        if isinstance(pair, tuple) and len(pair) == 2
    ]
    common = [v for k, v in names if k == "commonName"]
    if not common or not common[-1]:
        # As the kubelet's CommonNameUserConversion: no CN, no user.
        return None
    groups = tuple(v for k, v in names if k == "organizationName")
    return Identity(user=common[-1], groups=groups, method="x509")


def authenticate(request: web.Request, credentials: str | None) -> Identity | None:
    """Who the request is from, or None for no one; 401 for a wrong bearer token.

    ``credentials`` is the one ``Authorization`` value, already checked to be
    printable ASCII. Schemes other than Bearer are not ours and count as none.
    """
    identity = certificate_identity(request)
    if identity is not None:
        return identity
    scheme, _, given = (credentials or "").partition(" ")
    given = given.strip(" ")
    token = request.app[DEPS].auth_token
    if scheme.lower() != "bearer" or not given or not token:
        return None
    if not _token_matches(given, token):
        raise StatusError(401, "Unauthorized")
    return Identity(user=TOKEN_USER)


def needs_authentication(request: web.Request) -> bool:
    """The table in this module's docstring."""
    if not request.secure and not request.app[DEPS].auth_token:
        return False  # the common case, first: a plain loopback agent without a token
    path = re.sub("/{2,}", "/", request.path)
    if request.secure:
        return not OPEN_OVER_TLS.fullmatch(path)
    if request.app[LOOPBACK_ONLY]:
        return SENSITIVE_PATHS.fullmatch(path) is not None
    return not OPEN_OVER_TLS.fullmatch(path)


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
    identity = authenticate(request, credentials[0] if credentials else None)
    if identity is None and needs_authentication(request):
        if request.secure:
            raise StatusError(401, "Unauthorized")
        # Only the sensitive paths get here on loopback; say why /pods worked and this not.
        raise StatusError(401, "Unauthorized: this path needs the bearer token (authTokenFile)")
    if any(segment in (".", "..") for segment in request.path.split("/")):
        raise StatusError(400, f"path {shown(request.path)}: dot segments are not allowed")
    return await handler(request)
