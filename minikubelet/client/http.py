"""The connection to the agent: server URL, bearer token, TLS; errors as kubectl words them.

The standard library's ``urllib`` is enough for a command that makes a few
requests and streams one body, and it keeps the CLI free of the agent's event
loop. Every failure becomes a ``ClientError`` carrying the one line to print.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

DEFAULT_SERVER = "http://127.0.0.1:10255"
TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
TIMEOUT = 30.0


class ClientError(Exception):
    """A failure to print as one line (the message is that line) and exit 1."""


class ApiError(ClientError):
    """The server refused, with the code and the v1 Status it sent (if any)."""

    def __init__(self, message: str, *, code: int, status: Mapping[str, Any] | None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def is_status(self) -> bool:
        """Whether the server answered as the API does (a v1 Status), not as a
        server that lacks the path altogether."""
        return self.status is not None


@dataclass(frozen=True, slots=True)
class Connection:
    server: str = DEFAULT_SERVER
    token: str | None = None
    certificate_authority: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    insecure: bool = False
    timeout: float = TIMEOUT

    @property
    def host(self) -> str:
        """``host:port`` as kubectl names the server in its connection errors."""
        parsed = urllib.parse.urlsplit(self.server)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return f"{parsed.hostname}:{port}"

    def _context(self) -> ssl.SSLContext | None:
        if not self.server.startswith("https:"):
            return None
        try:
            context = ssl.create_default_context(cafile=self.certificate_authority)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_certificate:
                context.load_cert_chain(self.client_certificate, self.client_key)
        except (OSError, ssl.SSLError) as e:
            raise ClientError(f"error: TLS configuration: {e}") from None
        return context

    def open(
        self,
        path: str,
        query: Mapping[str, str] | None = None,
        *,
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> HTTPResponse:
        """GET ``path``; the open response, or a ``ClientError`` naming what went wrong."""
        url = self.server.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": accept, "User-Agent": "minikubelet-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            response: HTTPResponse = urllib.request.urlopen(
                request, timeout=timeout or self.timeout, context=self._context()
            )
        except urllib.error.HTTPError as e:
            with e:
                raise _api_error(e.code, e.read(1 << 20)) from None
        except urllib.error.URLError as e:
            raise self._connection_error(e.reason) from None
        except (OSError, ValueError) as e:
            raise self._connection_error(e) from None
        return response

    def _connection_error(self, reason: object) -> ClientError:
        if isinstance(reason, ConnectionRefusedError):
            return ClientError(
                f"The connection to the server {self.host} was refused - "
                "did you specify the right host or port?"
            )
        if isinstance(reason, ssl.SSLCertVerificationError):
            return ClientError(
                f"Unable to connect to the server {self.host}: certificate verify failed: "
                f"{reason.verify_message} (is its CA given with --certificate-authority?)"
            )
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return ClientError(f"Unable to connect to the server {self.host}: {text}")

    def get_json(
        self, path: str, query: Mapping[str, str] | None = None, *, accept: str = "application/json"
    ) -> Any:
        with self.open(path, query, accept=accept) as response:
            body = response.read()
        try:
            return json.loads(body)
        except ValueError:
            raise ClientError(
                f"error: the server {self.host} sent a body that is not JSON for {path}"
            ) from None

    def stream(
        self, path: str, query: Mapping[str, str] | None = None, *, accept: str = "*/*"
    ) -> Iterator[bytes]:
        """The body as it arrives, until the server ends it; no read timeout, for follows."""
        with self.open(path, query, accept=accept, timeout=None) as response:
            if response.fp is not None:
                # A follow may stay quiet for hours; only the connect is bounded.
                sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
                if sock is not None:
                    sock.settimeout(None)
            while chunk := response.read1(65536):
                yield chunk

    def lines(self, path: str, query: Mapping[str, str] | None = None) -> Iterator[bytes]:
        """A watch stream, one JSON event per line."""
        with self.open(path, query, timeout=None) as response:
            sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
            if sock is not None:
                sock.settimeout(None)
            while line := response.readline(16 << 20):
                if line.strip():
                    yield line


def _api_error(code: int, body: bytes) -> ApiError:
    status: dict[str, Any] | None = None
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and parsed.get("kind") == "Status":
            status = parsed
    except ValueError:
        pass
    if status is None:
        if code == 404:
            # kubectl's words for a path the server does not serve at all.
            return ApiError(
                "Error from server (NotFound): the server could not find the requested resource",
                code=code,
                status=None,
            )
        if code == 401:
            return ApiError(
                "error: You must be logged in to the server (Unauthorized)", code=code, status=None
            )
        return ApiError(
            f"error: the server responded with the status code {code} "
            "but did not return more information",
            code=code,
            status=None,
        )
    reason = str(status.get("reason") or "Unknown")
    message = str(status.get("message") or "")
    if code == 401:
        text = f"error: You must be logged in to the server ({message or reason})"
    else:
        text = f"Error from server ({reason}): {message}"
    return ApiError(text, code=code, status=status)


def read_token(token: str | None, token_file: str | None) -> str | None:
    """The bearer token given on the command line, or read from a file (stripped)."""
    if token:
        return token
    if not token_file:
        return None
    try:
        return Path(token_file).read_text().strip() or None
    except OSError as e:
        raise ClientError(f"error: --token-file {token_file}: {e.strerror or e}") from None
