"""The status endpoint's TLS context, loaded once at start (the kubelet's secure port).

OpenSSL's own errors for a bad file ("PEM lib") name neither the setting nor
the file, so each file is read and parsed on its own first, and every
failure becomes a ``ConfigError`` that names both; the agent then refuses to
start (exit 2). Who may ask over TLS is decided per request in ``guard.py``.

- TLS 1.2 is the least accepted, as the kubelet's default minimum.
- With ``clientCAFile``, a client certificate is asked for but not required
  (a token is the other way in). One that does not verify against that CA
  fails the handshake: Python's ``ssl`` can only verify while handshaking,
  where the kubelet, in Go, finishes the handshake and answers 401. Either
  way such a certificate authenticates nothing.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from minikubelet.errors import ConfigError


def _read(setting: str, path: str) -> None:
    try:
        Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{setting}: cannot read {path}: {e.strerror or e}") from None


def _certificates(setting: str, path: str) -> int:
    """How many certificates ``path`` holds; a ConfigError naming ``setting`` if none."""
    _read(setting, path)
    scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        scratch.load_verify_locations(cafile=path)
    except (ssl.SSLError, ValueError):
        raise ConfigError(f"{setting}: {path} holds no PEM certificate") from None
    count = scratch.cert_store_stats()["x509"]
    if not count:
        raise ConfigError(f"{setting}: {path} holds no PEM certificate")
    return count


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for a passphrase.
    raise _EncryptedKey


def server_tls_context(
    *, cert_file: str, key_file: str, client_ca_file: str = ""
) -> ssl.SSLContext:
    """A server context for the certificate chain in ``cert_file`` (leaf first) and its key,
    asking clients for a certificate signed by ``client_ca_file`` when one is given."""
    _certificates("tlsCertFile", cert_file)
    _read("tlsPrivateKeyFile", key_file)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except _EncryptedKey:
        raise ConfigError(
            f"tlsPrivateKeyFile: {key_file} is encrypted; the agent needs it unencrypted "
            "(readable by the agent's user only)"
        ) from None
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                f"tlsPrivateKeyFile: {key_file} is not the key of the certificate "
                f"in tlsCertFile {cert_file}"
            ) from None
        raise ConfigError(
            f"tlsPrivateKeyFile: {key_file} holds no usable PEM private key"
        ) from None
    if client_ca_file:
        _certificates("clientCAFile", client_ca_file)
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
