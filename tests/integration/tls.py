"""Throwaway CAs and HTTPS requests for the tests of the TLS endpoint (test_tls.py,
test_cli.py); the ``pki`` and ``tls_agent`` fixtures are in conftest.py."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

TOKEN = "s3cret-t0ken"


@dataclass(frozen=True, slots=True)
class Pki:
    ca: trustme.CA
    dir: Path
    # The client certificates, as files kubectl reads: from the client CA and from another.
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    def context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        return context


def make_pki(base: Path) -> Pki:
    """A CA with a server certificate for 127.0.0.1 and a client certificate, and a
    stranger CA with a client certificate of its own, written as files under ``base``."""
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(base / "server.pem"))
    server.private_key_pem.write_to_path(str(base / "server-key.pem"))
    files = {}
    for name, issuer in (("client", ca), ("stranger", other)):
        leaf = issuer.issue_cert(common_name=f"{name}-user")
        leaf.cert_chain_pems[0].write_to_path(str(base / f"{name}.pem"))
        leaf.private_key_pem.write_to_path(str(base / f"{name}-key.pem"))
        files[name] = (base / f"{name}.pem", base / f"{name}-key.pem")
    return Pki(ca, base, *files["client"], *files["stranger"])


def https_status(
    port: int, path: str, context: ssl.SSLContext, *, token: str = ""
) -> tuple[int, dict[str, Any], str]:
    """Status, JSON body (or {}) and WWW-Authenticate of a GET over TLS."""
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            body, code, challenge = resp.read(), resp.status, ""
    except urllib.error.HTTPError as e:
        with e:  # its socket, closed now rather than by the collector, with a warning
            body, code, challenge = e.read(), e.code, e.headers.get("WWW-Authenticate", "")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {}
    return int(code), parsed if isinstance(parsed, dict) else {}, challenge
