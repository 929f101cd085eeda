"""Who may read what (``guard.py``), over real HTTP and real TLS on 127.0.0.1; the TLS
settings and files refused at start (``settings.py``, ``tls.py``).

The guard's decision table is run against the real application served by ``serve``
(connection gate, TLS and all), with certificates from throwaway CAs (``trustme``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
import uvloop
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from minikubelet.errors import ConfigError
from minikubelet.server import connections
from minikubelet.server.app import ServerDeps, ServerLimits, make_app
from minikubelet.server.guard import SENSITIVE_PATHS, TOKEN_USER, authenticate
from minikubelet.server.serve import serve
from minikubelet.server.tls import server_tls_context
from minikubelet.settings import build_settings
from minikubelet.status.manager import StatusManager
from tests.unit.test_server import Engine, wait_for

TOKEN = "s3cret"
LOG_PATH = "/api/v1/namespaces/default/pods/web-n1/log"


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA for servers and clients, a stranger CA, and files of their certificates."""

    ca: trustme.CA
    other: trustme.CA
    dir: Path

    @property
    def cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    def client(
        self,
        *,
        cert: trustme.LeafCert | None = None,
        verify: bool = True,
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        if not verify:
            context.check_hostname = False
        if cert is not None:
            cert.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    found = Pki(trustme.CA(), trustme.CA(), tmp_path_factory.mktemp("pki"))
    server = found.ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(found.cert))
    server.private_key_pem.write_to_path(str(found.key))
    found.ca.cert_pem.write_to_path(str(found.ca_file))
    return found


@pytest.fixture(scope="module")
def alice(pki: Pki) -> trustme.LeafCert:
    return pki.ca.issue_cert(common_name="alice", organization_name="ops")


@pytest.fixture(scope="module")
def stranger(pki: Pki) -> trustme.LeafCert:
    return pki.other.issue_cert(common_name="alice")


def deps(token: str) -> ServerDeps:
    return ServerDeps(status=StatusManager(), engine=Engine(), source_errors=list, auth_token=token)


@pytest.fixture
def server_context(pki: Pki) -> ssl.SSLContext:
    return server_tls_context(
        cert_file=str(pki.cert), key_file=str(pki.key), client_ca_file=str(pki.ca_file)
    )


async def status_of(
    port: int,
    path: str,
    *,
    scheme: str = "http",
    client: ssl.SSLContext | None = None,
    authorization: str = "",
) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{scheme}://127.0.0.1:{port}{path}",
            headers=headers,
            ssl=client if client is not None else True,
        ) as resp,
    ):
        if resp.status == 401:
            body = await resp.json()
            assert body["kind"] == "Status"
            assert body["reason"] == "Unauthorized"
            assert resp.headers["WWW-Authenticate"] == "Bearer"
        return resp.status


@pytest.fixture
async def plain_runner() -> AsyncIterator[dict[str, web.AppRunner]]:
    runners: dict[str, web.AppRunner] = {}
    for token in ("", TOKEN):
        runners[token] = await serve(deps(token), "127.0.0.1", 0)
    yield runners
    for runner in runners.values():
        await runner.cleanup()


def port_of(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


# --- plain HTTP on loopback: the read-only port ----------------------------------------------

OPEN = ["/pods", "/healthz", "/metrics", "/api/v1/events"]
SENSITIVE = [LOG_PATH, LOG_PATH + "/", "/containerLogs/default/web-n1/app", "/logs/syslog"]
# None: no Authorization header; "Basic ...": not a bearer token, so no credentials.
CREDENTIALS = ["", f"Bearer {TOKEN}", "Bearer wrong", "Basic YTpi"]

# (token configured, path kind, credentials) -> refused with 401?
PLAIN_TABLE = [
    # No token configured: nothing to check against; everything as today.
    *[("", kind, cred, False) for kind in ("open", "sensitive") for cred in CREDENTIALS],
    # A token: open paths stay open without credentials, and a wrong token is refused.
    (TOKEN, "open", "", False),
    (TOKEN, "open", f"Bearer {TOKEN}", False),
    (TOKEN, "open", "Bearer wrong", True),
    (TOKEN, "open", "Basic YTpi", False),
    # ... and the sensitive paths need it.
    (TOKEN, "sensitive", "", True),
    (TOKEN, "sensitive", f"Bearer {TOKEN}", False),
    (TOKEN, "sensitive", "Bearer wrong", True),
    (TOKEN, "sensitive", "Basic YTpi", True),
]


@pytest.mark.parametrize(
    ("token", "kind", "credentials", "refused"),
    PLAIN_TABLE,
    ids=[f"token={bool(t)}-{k}-{c or 'none'}" for t, k, c, _ in PLAIN_TABLE],
)
async def test_plain_loopback(
    plain_runner: dict[str, web.AppRunner], token: str, kind: str, credentials: str, refused: bool
) -> None:
    port = port_of(plain_runner[token])
    for path in OPEN if kind == "open" else SENSITIVE:
        code = await status_of(port, path, authorization=credentials)
        if refused:
            assert code == 401, path
        else:
            # The log endpoint may not exist (404) and the kubelet's debug paths answer 405;
            # what matters is that authentication let the request through.
            assert code != 401, path
            if path == "/pods":
                assert code == 200


def test_sensitive_paths() -> None:
    for path in SENSITIVE:
        assert SENSITIVE_PATHS.fullmatch(path), path
    for path in [*OPEN, "/api/v1/namespaces/default/pods/web-n1", "/api/v1/pods", "/logsx"]:
        assert not SENSITIVE_PATHS.fullmatch(path), path


async def test_repeated_slashes_do_not_dodge_the_token(
    plain_runner: dict[str, web.AppRunner],
) -> None:
    port = port_of(plain_runner[TOKEN])
    for path in ["//containerLogs/default/web-n1/app", "/api/v1//namespaces/default/pods/x/log"]:
        assert await status_of(port, path) == 401, path


# --- TLS: the secure port -------------------------------------------------------------------


@pytest.fixture
async def tls_runners(
    server_context: ssl.SSLContext, pki: Pki
) -> AsyncIterator[dict[str, web.AppRunner]]:
    """TLS with a token and the client CA; with the client CA only; with the token only."""
    token_only = server_tls_context(cert_file=str(pki.cert), key_file=str(pki.key))
    runners = {
        "token+ca": await serve(deps(TOKEN), "127.0.0.1", 0, tls=server_context),
        "ca": await serve(deps(""), "127.0.0.1", 0, tls=server_context),
        "token": await serve(deps(TOKEN), "127.0.0.1", 0, tls=token_only),
    }
    yield runners
    for runner in runners.values():
        await runner.cleanup()


@pytest.fixture(scope="module")
def clients(
    pki: Pki, alice: trustme.LeafCert, stranger: trustme.LeafCert
) -> dict[str | None, ssl.SSLContext]:
    """Client contexts trusting the server, by the certificate they present."""
    no_cn = pki.ca.issue_cert("nobody.example")
    return {
        None: pki.client(),
        "alice": pki.client(cert=alice),
        "no-cn": pki.client(cert=no_cn),
        "stranger": pki.client(cert=stranger),
    }


# (server, credentials, client certificate) -> status of /pods; /healthz is 200 unless 401.
TLS_TABLE = [
    ("token+ca", "", None, 401),
    ("token+ca", "Bearer wrong", None, 401),
    ("token+ca", "Basic YTpi", None, 401),
    ("token+ca", f"Bearer {TOKEN}", None, 200),
    ("token+ca", "", "alice", 200),
    # A verified certificate authenticates first, as in the API server's chain.
    ("token+ca", "Bearer wrong", "alice", 200),
    ("token+ca", "", "no-cn", 401),
    ("token+ca", f"Bearer {TOKEN}", "no-cn", 200),
    ("ca", "", None, 401),
    ("ca", f"Bearer {TOKEN}", None, 401),
    ("ca", "", "alice", 200),
    # Without clientCAFile no certificate is asked for, so none authenticates.
    ("token", "", "alice", 401),
    ("token", f"Bearer {TOKEN}", None, 200),
]


@pytest.mark.parametrize(
    ("server", "credentials", "cert", "expected"),
    TLS_TABLE,
    ids=[f"{s}-{c or 'none'}-{cert or 'nocert'}" for s, c, cert, _ in TLS_TABLE],
)
async def test_tls(
    tls_runners: dict[str, web.AppRunner],
    clients: dict[str | None, ssl.SSLContext],
    *,
    server: str,
    credentials: str,
    cert: str | None,
    expected: int,
) -> None:
    client = clients[cert]
    port = port_of(tls_runners[server])
    for path in ["/pods", "/api/v1/events", "/metrics"]:
        code = await status_of(port, path, scheme="https", client=client, authorization=credentials)
        assert code == expected if expected == 401 else code != 401, path
    assert (
        await status_of(port, "/pods", scheme="https", client=client, authorization=credentials)
        == expected
    )
    # Liveness checks need no credentials; a wrong token is still refused.
    health = await status_of(
        port, "/healthz", scheme="https", client=client, authorization=credentials
    )
    assert health == (401 if credentials == "Bearer wrong" and cert is None else 200)
    assert await status_of(port, "/healthz/ping", scheme="https", client=client) == 200


async def test_a_certificate_from_another_ca_fails_the_handshake(
    tls_runners: dict[str, web.AppRunner], pki: Pki, stranger: trustme.LeafCert
) -> None:
    port = port_of(tls_runners["token+ca"])
    with pytest.raises(aiohttp.ClientError):
        await status_of(port, "/healthz", scheme="https", client=pki.client(cert=stranger))
    # The server is unharmed and still answers.
    assert await status_of(port, "/healthz", scheme="https", client=pki.client()) == 200


async def test_tls_listen_still_checks_the_host_on_loopback(
    tls_runners: dict[str, web.AppRunner], pki: Pki
) -> None:
    port = port_of(tls_runners["token"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://127.0.0.1:{port}/pods",
            headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"},
            ssl=pki.client(),
        ) as resp,
    ):
        assert resp.status == 403


async def test_a_tls_1_2_client_is_served(tls_runners: dict[str, web.AppRunner], pki: Pki) -> None:
    # TLS 1.0 and 1.1 are refused by the context's minimum (test_the_context_is_tls_1_2_at_least);
    # a live check could not tell it from OpenSSL 3's own default, so it is not made.
    client = pki.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    port = port_of(tls_runners["token"])
    assert await status_of(port, "/healthz", scheme="https", client=client) == 200


async def test_the_certificate_subject_is_the_identity(
    server_context: ssl.SSLContext, pki: Pki, alice: trustme.LeafCert
) -> None:
    async def whoami(request: web.Request) -> web.Response:
        identity = authenticate(request, request.headers.get("Authorization"))
        if identity is None:
            return web.json_response(None)
        return web.json_response([identity.user, list(identity.groups), identity.method])

    app = make_app(deps(TOKEN), loopback_only=True)
    app.router.add_get("/whoami", whoami)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_context)
    client: TestClient[web.Request, web.Application] = TestClient(server)
    await client.start_server()
    try:
        resp = await client.get("/whoami", ssl=pki.client(cert=alice))
        assert await resp.json() == ["alice", ["ops"], "x509"]
        resp = await client.get(
            "/whoami", ssl=pki.client(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert await resp.json() == [TOKEN_USER, [], "token"]
    finally:
        await client.close()


async def _tls_connections_count_from_accept(
    context: ssl.SSLContext,
    clients: dict[str | None, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = await serve(
        deps(TOKEN), "127.0.0.1", 0, limits=ServerLimits(max_connections=2), tls=context
    )
    (site,) = runner.sites
    assert isinstance(site, connections.GatedSite)
    gate = site._gate
    port = port_of(runner)
    held: list[asyncio.StreamWriter] = []
    try:
        # Two clients that connect and never say hello hold both places.
        for _ in range(2):
            held.append((await asyncio.open_connection("127.0.0.1", port))[1])
        await wait_for(lambda: gate.open == 2, what="the silent connections counted")
        with pytest.raises(aiohttp.ClientError):
            await status_of(port, "/healthz", scheme="https", client=clients[None])
        held.pop().close()
        await wait_for(lambda: gate.open == 1, what="a silent connection gone")
        assert await status_of(port, "/healthz", scheme="https", client=clients[None]) == 200
        # Failed handshakes give their place back: plain HTTP, a stranger's certificate.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /pods HTTP/1.1\r\nHost: localhost\r\n\r\n")
        async with asyncio.timeout(5):
            assert not (await reader.read()).startswith(b"HTTP/")
        writer.close()
        with pytest.raises(aiohttp.ClientError):
            await status_of(port, "/healthz", scheme="https", client=clients["stranger"])
        await wait_for(lambda: gate.open == 1, what="failed handshakes not counted")
        # A handshake that never ends is ended (the held one keeps its 10 s).
        monkeypatch.setattr(connections, "TLS_HANDSHAKE_TIMEOUT", 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        held.pop().close()
        await wait_for(lambda: gate.open == 0, what="every place given back")
    finally:
        for writer in held:
            writer.close()
        await runner.cleanup()


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_tls_connections_count_from_accept(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    server_context: ssl.SSLContext,
    clients: dict[str | None, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over TLS the connection cap counts handshakes in progress, and every connection gives
    its place back, however its handshake ends."""
    scenario = _tls_connections_count_from_accept(server_context, clients, monkeypatch)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.wait_for(scenario, 60))


async def test_a_failure_to_set_up_tls_costs_one_connection(
    server_context: ssl.SSLContext,
    clients: dict[str | None, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("broken")

    runner = await serve(deps(TOKEN), "127.0.0.1", 0, tls=server_context)
    (site,) = runner.sites
    assert isinstance(site, connections.GatedSite)
    try:
        monkeypatch.setattr(connections.ConnectionGate, "_secure", broken)
        with pytest.raises(aiohttp.ClientError):
            await status_of(port_of(runner), "/healthz", scheme="https", client=clients[None])
        assert site._gate.open == 0
        monkeypatch.undo()
        assert (
            await status_of(port_of(runner), "/healthz", scheme="https", client=clients[None])
            == 200
        )
    finally:
        await runner.cleanup()


# --- start-up refusals ------------------------------------------------------------------------

SETTINGS_TABLE = [
    ({"listen": "0.0.0.0:1"}, "tlsCertFile / --tls-cert-file, tlsPrivateKeyFile"),
    ({"listen": "0.0.0.0:1", "auth_token_file": "t"}, "is not loopback"),
    (
        {"listen": "0.0.0.0:1", "tls_cert_file": "c", "tls_private_key_file": "k"},
        "set authTokenFile / --auth-token-file",
    ),
    ({"tls_cert_file": "c"}, "tlsCertFile is set without its pair"),
    ({"tls_private_key_file": "k"}, "tlsPrivateKeyFile is set without its pair"),
    ({"client_ca_file": "ca"}, "clientCAFile: client certificates need TLS"),
    ({"tls_cert_file": "c", "tls_private_key_file": "k"}, "nothing could"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), SETTINGS_TABLE, ids=[m for _, m in SETTINGS_TABLE]
)
def test_settings_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(config_file=None, overrides={"node_name": "n", **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "listen": "0.0.0.0:1",
            "tls_cert_file": "c",
            "tls_private_key_file": "k",
            "auth_token_file": "t",
        },
        {"tls_cert_file": "c", "tls_private_key_file": "k", "client_ca_file": "ca"},
        {"tls_cert_file": "c", "tls_private_key_file": "k", "auth_token_file": "t"},
    ],
    ids=["exposed", "loopback-ca", "loopback-token"],
)
def test_settings_accepted(overrides: dict[str, str]) -> None:
    build_settings(config_file=None, overrides={"node_name": "n", **overrides})


def test_config_file_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("tlsCertFile: /c\ntlsPrivateKeyFile: /k\nclientCAFile: /ca\n")
    settings = build_settings(config_file=config, overrides={"node_name": "n"})
    assert (settings.tls_cert_file, settings.tls_private_key_file, settings.client_ca_file) == (
        "/c",
        "/k",
        "/ca",
    )


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> dict[str, Path]:
    from cryptography.hazmat.primitives import serialization

    other = pki.other.issue_cert("127.0.0.1")
    found = {
        "missing": tmp_path / "missing.pem",
        "garbage": tmp_path / "garbage.pem",
        "other-key": tmp_path / "other-key.pem",
        "encrypted": tmp_path / "encrypted.pem",
        "dir": tmp_path,
    }
    found["garbage"].write_text("not a certificate\n")
    other.private_key_pem.write_to_path(str(found["other-key"]))
    key = serialization.load_pem_private_key(pki.ca.issue_cert("x").private_key_pem.bytes(), None)
    found["encrypted"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    return found


FILE_TABLE = [
    ("cert", "missing", "tlsCertFile: cannot read {path}: No such file"),
    ("cert", "dir", "tlsCertFile: cannot read {path}: Is a directory"),
    ("cert", "garbage", "tlsCertFile: {path} holds no PEM certificate"),
    ("key", "missing", "tlsPrivateKeyFile: cannot read {path}"),
    ("key", "garbage", "tlsPrivateKeyFile: {path} holds no usable PEM private key"),
    ("key", "other-key", "tlsPrivateKeyFile: {path} is not the key of the certificate"),
    ("key", "encrypted", "tlsPrivateKeyFile: {path} is encrypted"),
    ("ca", "missing", "clientCAFile: cannot read {path}"),
    ("ca", "garbage", "clientCAFile: {path} holds no PEM certificate"),
]


@pytest.mark.parametrize(
    ("which", "bad", "message"), FILE_TABLE, ids=[f"{w}-{b}" for w, b, _ in FILE_TABLE]
)
def test_unusable_files_name_the_setting_and_file(
    pki: Pki, files: dict[str, Path], which: str, bad: str, message: str
) -> None:
    paths = {"cert": str(pki.cert), "key": str(pki.key), "ca": str(pki.ca_file)}
    paths[which] = str(files[bad])
    with pytest.raises(ConfigError) as raised:
        server_tls_context(
            cert_file=paths["cert"], key_file=paths["key"], client_ca_file=paths["ca"]
        )
    assert str(raised.value).startswith(message.format(path=files[bad])), str(raised.value)


def test_the_context_is_tls_1_2_at_least(server_context: ssl.SSLContext) -> None:
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context.verify_mode == ssl.CERT_OPTIONAL
