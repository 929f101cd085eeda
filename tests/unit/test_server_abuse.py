"""The status endpoint under abuse: a real TCP site on 127.0.0.1 and raw sockets (no Docker).

Each test states the attack and what must hold: an answer in the 4xx range with a
v1 Status (or a closed connection for bytes that are not HTTP), never a 5xx, and
every resource the client took (connection, watch slot, subscription) given back.
The corpus of malformed requests here is also replayed against the real agent by
tests/integration/test_endpoint_abuse.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from aiohttp import web

from minikubelet.server.app import ServerDeps, ServerLimits
from minikubelet.server.guard import is_loopback_authority, is_loopback_listen
from minikubelet.server.params import MAX_TIMEOUT_SECONDS
from minikubelet.server.serve import serve
from minikubelet.server.watch import WATCH_SLOTS
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import PodPhase, PodStatus
from tests.unit.helpers import make_pod
from tests.unit.test_server import Engine, wait_for

# --- raw HTTP -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back for one raw request: nothing (closed or reset), or a response."""

    raw: bytes

    @property
    def status(self) -> int | None:
        line = self.raw.split(b"\r\n", 1)[0].split(b" ")
        if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
            return None
        return int(line[1])

    @property
    def headers(self) -> dict[str, str]:
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head)}

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""

    def json(self) -> Any:
        return json.loads(self.body)


READ_LIMIT = 1 << 20


async def exchange(port: int, raw: bytes, *, timeout: float = 5.0) -> Reply:
    """Send ``raw`` on a new connection and read until the server closes it.

    Requests must make the server close: ``Connection: close``, or bytes it refuses.
    A server that neither answers nor closes within ``timeout`` fails the test.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    data = b""
    try:
        writer.write(raw)
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionError):
                await writer.drain()
                while len(data) < READ_LIMIT and (chunk := await reader.read(65536)):
                    data += chunk
    except TimeoutError:
        raise AssertionError(
            f"no answer and no close within {timeout}s for {raw[:120]!r}; got {data[:200]!r}"
        ) from None
    finally:
        writer.close()
    return Reply(data)


def get(target: str | bytes, *headers: str | bytes, host: str | bytes = "127.0.0.1") -> bytes:
    """A GET that asks the server to close after answering."""

    def b(value: str | bytes) -> bytes:
        return value if isinstance(value, bytes) else value.encode()

    lines = [b"GET " + b(target) + b" HTTP/1.1", b"Host: " + b(host), *map(b, headers)]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


def assert_status(reply: Reply, code: int, reason: str) -> dict[str, Any]:
    assert reply.status == code, reply.raw[:500]
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = reply.json()
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert (body["reason"], body["code"]) == (reason, code)
    return body


# --- a served endpoint ----------------------------------------------------------------------


@dataclass
class Served:
    runner: web.AppRunner
    status: StatusManager
    engine: Engine
    # Client ends a test opened; closed before the server stops, even when the test fails,
    # so a stalled connection cannot outlive its test.
    sockets: list[socket.socket] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def watch(self, *, rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
        return await open_watch(self.port, rcvbuf=rcvbuf, opened=self.sockets)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
        self.writers.append(writer)
        return reader, writer

    @property
    def port(self) -> int:
        return int(self.runner.addresses[0][1])

    @property
    def app(self) -> web.Application:
        return self.runner.app

    @property
    def watches(self) -> int:
        return self.app[WATCH_SLOTS].active


@contextlib.asynccontextmanager
async def served(
    limits: ServerLimits | None = None, *, token: str = "", host: str = "127.0.0.1"
) -> AsyncIterator[Served]:
    status, engine = StatusManager(), Engine()
    deps = ServerDeps(status=status, engine=engine, source_errors=list, auth_token=token)
    runner = await serve(deps, host, 0, limits=limits)
    s = Served(runner, status, engine)
    try:
        yield s
    finally:
        for sock in s.sockets:
            sock.close()
        for writer in s.writers:
            writer.close()
        await asyncio.wait_for(runner.cleanup(), 10)


def on_both_loops(
    scenario: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[Callable[[], asyncio.AbstractEventLoop]], None]:
    """A test that runs ``scenario`` on asyncio's loop and on uvloop (which the agent runs on):
    connection handling differs between their transports."""

    @pytest.mark.parametrize(
        "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
    )
    def test(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(asyncio.wait_for(scenario(), 60))

    test.__doc__ = scenario.__doc__
    return test


# --- DNS rebinding: the Host header on a loopback listen ------------------------------------

LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:10255",
    "127.1.2.3:80",
    "localhost",
    "LocalHost:10255",
    "localhost.",
    "localhost:",
    "[::1]",
    "[::1]:10255",
    "[::ffff:127.0.0.1]:1",
]
FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:10255",
    "127.0.0.1.nip.io",
    "localhost.evil.example",
    "sub.localhost",
    "0.0.0.0",
    "10.0.0.1:10255",
    "[::2]:10255",
    "[::1",
    "[::1]x",
    "[127.0.0.1]",
    "127.0.0.1:port",
    "127.0.0.1:123456",
    "127.1",
    "",
    "localhost\x00.evil",
    "evil\udcff",
]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS, ids=repr)
def test_loopback_host_values(host: str) -> None:
    assert is_loopback_authority(host)


@pytest.mark.parametrize("host", FOREIGN_HOSTS, ids=repr)
def test_foreign_host_values(host: str) -> None:
    assert not is_loopback_authority(host)


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("node.example", False),
    ],
)
def test_loopback_listen_addresses(listen: str, loopback: bool) -> None:
    assert is_loopback_listen(listen) is loopback


async def test_a_loopback_listen_answers_only_loopback_hosts() -> None:
    async with served() as s:
        for host in LOOPBACK_HOSTS:
            assert (await exchange(s.port, get("/pods", host=host))).status == 200, host
        foreign: list[str | bytes] = [h for h in FOREIGN_HOSTS if h.isascii()]
        for bad in [*foreign, b"evil\xff", b"\xc3\xa9"]:
            reply = await exchange(s.port, get("/pods", host=bad))
            if reply.status == 400 and b"Status" not in reply.body:
                continue  # bytes aiohttp's parser refuses before any handler
            body = assert_status(reply, 403, "Forbidden")
            assert "is not allowed" in body["message"]
        # Every path, not only /pods: health output names the checks.
        assert_status(
            await exchange(s.port, get("/healthz", host="evil.example")), 403, "Forbidden"
        )
        # An absolute-form target names the host it is for, whatever Host says.
        reply = await exchange(s.port, get("http://evil.example/pods", host="localhost"))
        assert_status(reply, 403, "Forbidden")
        reply = await exchange(s.port, get("http://[::1]:1/pods", host="localhost"))
        assert reply.status == 200
        # HTTP/1.0 without Host is no browser (browsers always send Host).
        reply = await exchange(s.port, b"GET /pods HTTP/1.0\r\n\r\n")
        assert reply.status == 200


async def test_off_loopback_the_token_protects_instead() -> None:
    # Listening on every address of this machine; the test still connects to 127.0.0.1.
    async with served(token="s3cret", host="0.0.0.0") as s:
        reply = await exchange(s.port, get("/pods", "Authorization: Bearer s3cret", host="evil"))
        assert reply.status == 200
        assert_status(await exchange(s.port, get("/pods", host="evil")), 401, "Unauthorized")


# --- malformed headers and parameters --------------------------------------------------------

BAD_CREDENTIALS = [b"Bearer \xff\xfe", b"Bearer s3cret\xff", b"\xc3\xa9t\xc3\xa9", b"\x80"]


@pytest.mark.parametrize("token", ["", "s3cret"], ids=["no token", "token"])
async def test_malformed_authorization_is_a_bad_request(token: str) -> None:
    async with served(token=token) as s:
        for credentials in BAD_CREDENTIALS:
            reply = await exchange(s.port, get("/pods", b"Authorization: " + credentials))
            body = assert_status(reply, 400, "BadRequest")
            assert body["message"].startswith("Authorization:")
        for control in [b"Bearer s3cr\x7ft", b"Bearer \x01"]:
            # aiohttp's parser refuses control characters in any header, before us.
            reply = await exchange(s.port, get("/pods", b"Authorization: " + control))
            assert reply.status == 400
        twice = get("/pods", "Authorization: Bearer s3cret", "Authorization: Bearer s3cret")
        assert_status(await exchange(s.port, twice), 400, "BadRequest")
        ok = await exchange(s.port, get("/pods", "Authorization: Bearer s3cret"))
        assert ok.status == 200
        if token:
            wrong = await exchange(s.port, get("/pods", "Authorization: Bearer s3cres"))
            assert_status(wrong, 401, "Unauthorized")
            assert wrong.headers["www-authenticate"] == "Bearer"


BAD_TIMEOUTS = [
    "nan",
    "NaN",
    "-1",
    "-0",
    "99999999999999999999",
    "9" * 5000,
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "1e3",
    "0.2",
    "1.0",
    "",
    " ",
    " 5",
    "5 ",
    "+5",
    "0x10",
    "1_000",
    "5s",
    "true",
    "null",
    "\u0661",  # Arabic-Indic one: int() takes it, the API server does not
    "\uff11",  # fullwidth one
    "²",
    "é",
    "\x00",
    str(MAX_TIMEOUT_SECONDS + 1),
]


def query_value(value: str) -> bytes:
    return "".join(
        c if c.isascii() and c.isalnum() else f"%{b:02X}" for c in value for b in c.encode()
    ).encode()


@pytest.mark.parametrize("value", BAD_TIMEOUTS, ids=lambda v: ascii(v[:20]))
async def test_bad_timeout_seconds_is_a_bad_request_and_never_a_watch(value: str) -> None:
    async with served() as s:
        for query in [b"watch=1&", b"watch&", b"", b"watch=false&"]:
            target = b"/pods?" + query + b"timeoutSeconds=" + query_value(value)
            body = assert_status(await exchange(s.port, get(target)), 400, "BadRequest")
            assert body["message"].startswith("timeoutSeconds: invalid value")
            assert str(MAX_TIMEOUT_SECONDS) in body["message"]
        assert s.status.subscriber_count == 0
        assert s.watches == 0


async def test_timeout_seconds_in_range_is_taken() -> None:
    async with served() as s:
        for value in ["0", "00", "1", str(MAX_TIMEOUT_SECONDS)]:
            reply = await exchange(s.port, get(f"/pods?timeoutSeconds={value}"))
            assert reply.status == 200, value
        # Repeated: the first counts, as on the API server.
        assert (
            await exchange(s.port, get("/pods?timeoutSeconds=1&timeoutSeconds=x"))
        ).status == 200
        reply = await exchange(s.port, get("/pods?watch=1&timeoutSeconds=1"), timeout=10)
        assert reply.status == 200  # a watch that ended by itself, so the read saw the close


@pytest.mark.parametrize(
    "target",
    ["/exec/../pods", "/pods/..", "/./pods", "/pods/%2e%2e/healthz", "/exec/..%2fpods", "/.%2e/x"],
)
async def test_dot_segments_are_refused(target: str) -> None:
    async with served() as s:
        body = assert_status(await exchange(s.port, get(target)), 400, "BadRequest")
        assert "dot segments" in body["message"]


async def test_head_pods_has_no_body() -> None:
    async with served() as s:
        s.status.track(make_pod(("a",)))
        raw = b"HEAD /pods HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        reply = await exchange(s.port, raw)
        assert reply.status == 200
        assert int(reply.headers["content-length"]) > 0
        assert reply.body == b""


MALFORMED = [
    b"GET /pods HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"BREW /pods HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
]


async def test_malformed_http_is_logged_quietly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with served() as s:
        for raw in MALFORMED:
            assert (await exchange(s.port, raw)).status == 400
    # The client's garbage is no error of the agent's, and must not fill its log.
    assert [r for r in caplog.records if r.name.startswith("minikubelet.server")] == []


async def test_malformed_http_is_one_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="minikubelet.server.http")
    async with served() as s:
        for raw in MALFORMED:
            assert (await exchange(s.port, raw)).status == 400
    records = [r for r in caplog.records if r.name == "minikubelet.server.http"]
    assert len(records) == len(MALFORMED)
    for record in records:
        assert record.levelno == logging.DEBUG
        assert record.exc_info is None
        assert record.getMessage().startswith("malformed request from 127.0.0.1: ")


# --- watches: the cap, lag, readers that stop, clients that leave ----------------------------


async def open_watch(
    port: int, *, rcvbuf: int | None = None, opened: list[socket.socket]
) -> tuple[socket.socket, bytes]:
    """A watch on a raw socket whose response headers were read; the caller never reads more.

    The socket is added to ``opened`` at once, for the caller to close whatever happens.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    opened.append(sock)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
    await loop.sock_sendall(sock, b"GET /pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = b""
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 1)
            if not chunk:
                break
            head += chunk
    return sock, head


async def test_watches_past_the_cap_get_429() -> None:
    async with served(ServerLimits(max_watches=2)) as s:
        first, _ = await s.watch()
        second, head = await s.watch()
        assert head.startswith(b"HTTP/1.1 200")
        reply = await exchange(s.port, get("/pods?watch=1"))
        body = assert_status(reply, 429, "TooManyRequests")
        assert reply.headers["retry-after"] == "1"
        assert body["details"] == {"retryAfterSeconds": 1}
        assert s.watches == 2
        # Lists are not watches: they still answer.
        assert (await exchange(s.port, get("/pods"))).status == 200
        first.close()
        await wait_for(lambda: s.watches == 1, what="the closed watch's slot")
        third, head = await s.watch()
        assert head.startswith(b"HTTP/1.1 200")
        second.close()
        third.close()
        await wait_for(lambda: s.watches == 0 and s.status.subscriber_count == 0, what="no watch")


async def test_a_lagging_watch_ends_with_410_expired() -> None:
    async with served(ServerLimits(watch_max_lag=5)) as s:
        reader, writer = await s.connect()
        writer.write(get("/pods?watch=1"))
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            await wait_for(lambda: s.status.subscriber_count == 1, what="the watch")
            # Published faster than the handler can take them: it falls behind.
            for i in range(10):
                s.status.track(make_pod(("a",), name=f"p{i}"))
            body = await reader.read()  # chunked: the events, then the end of the stream
        writer.close()
        events = [json.loads(line) for line in _unchunk(body).splitlines()]
        assert events[-1]["type"] == "ERROR"
        status = events[-1]["object"]
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
        assert all(e["type"] == "ADDED" for e in events[:-1])
        assert s.watches == 0


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def _big_pod(i: int, size: int) -> Any:
    return make_pod(("a",), name=f"big{i}", annotations={"pad": "x" * size})


@contextlib.contextmanager
def captured(logger_name: str) -> Iterator[list[str]]:
    """The messages ``logger_name`` logs at INFO and above while the block runs."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    messages: list[str] = []
    logger = logging.getLogger(logger_name)
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _watcher_that_never_reads_is_dropped() -> None:
    """A watcher that stops reading holds nothing past the write timeout."""
    limits = ServerLimits(write_timeout=0.3, watch_max_lag=100_000)
    with captured("minikubelet.server.stream") as logs:
        async with served(limits) as s:
            sock, head = await s.watch(rcvbuf=4096)
            assert head.startswith(b"HTTP/1.1 200")
            # ~20 MiB of events: more than the socket buffers of both ends hold.
            for i in range(200):
                s.status.track(_big_pod(i, 100_000))
            await wait_for(lambda: s.watches == 0, what="the stalled watch dropped", timeout=20)
            assert s.status.subscriber_count == 0
            assert any("read nothing for 0.3s" in m for m in logs), logs
            # The agent answers others all along.
            assert (await exchange(s.port, get("/healthz"))).status == 200
            sock.close()


test_a_watcher_that_never_reads_is_dropped = on_both_loops(_watcher_that_never_reads_is_dropped)


async def _a_list_reader_that_never_reads_is_dropped() -> None:
    """The same deadline holds for a large /pods that is never read."""
    async with served(ServerLimits(write_timeout=0.3)) as s:
        for i in range(100):
            s.status.track(_big_pod(i, 100_000))
        sock = socket.socket()
        s.sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", s.port)), 5)
        await loop.sock_sendall(sock, b"GET /pods HTTP/1.1\r\nHost: localhost\r\n\r\n")
        server = s.runner.server
        assert server is not None
        await wait_for(lambda: not server.connections, what="the stalled list dropped", timeout=20)
        sock.close()


test_a_list_reader_that_never_reads_is_dropped = on_both_loops(
    _a_list_reader_that_never_reads_is_dropped
)


async def _a_client_that_leaves_cancels_its_watch() -> None:
    """No write is pending, so only handler cancellation can end the handler."""
    async with served() as s:
        sock, head = await s.watch()
        assert head.startswith(b"HTTP/1.1 200")
        assert s.status.subscriber_count == 1
        sock.close()
        await wait_for(
            lambda: s.watches == 0 and s.status.subscriber_count == 0, what="the watch released"
        )


test_a_client_that_leaves_cancels_its_watch = on_both_loops(_a_client_that_leaves_cancels_its_watch)


async def test_shutdown_ends_watches_promptly() -> None:
    status, engine = StatusManager(), Engine()
    runner = await serve(
        ServerDeps(status=status, engine=engine, source_errors=list), "127.0.0.1", 0
    )
    port = int(runner.addresses[0][1])
    socks: list[socket.socket] = []
    try:
        for _ in range(3):
            await open_watch(port, opened=socks)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(runner.cleanup(), 5)
        assert loop.time() - started < 2
        assert status.subscriber_count == 0
    finally:
        for sock in socks:
            sock.close()
        await runner.cleanup()


# --- connections: the cap and idle ones -------------------------------------------------------


async def _keepalive(s: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that asked /healthz once and stays open (keep-alive)."""
    reader, writer = await s.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert await reader.readexactly(2) == b"ok"
    return reader, writer


async def _connections_past_the_cap_are_refused() -> None:
    """Past max_connections: 503 with a Status, then closed; a freed slot is taken again."""
    async with served(ServerLimits(max_connections=3)) as s:
        held = [await _keepalive(s) for _ in range(3)]
        refused = await exchange(s.port, get("/pods"))
        body = assert_status(refused, 503, "ServiceUnavailable")
        assert refused.headers["retry-after"] == "1"
        assert "too many connections" in body["message"]
        # A burst past the cap: each is refused, none is left open.
        replies = await asyncio.gather(*(exchange(s.port, get("/pods")) for _ in range(20)))
        assert {r.status for r in replies} <= {503, None}
        _, writer = held.pop()
        writer.close()
        server = s.runner.server
        assert server is not None
        await wait_for(lambda: len(server.connections) == 2, what="the closed connection gone")
        assert (await exchange(s.port, get("/pods"))).status == 200
        for _, writer in held:
            writer.close()


test_connections_past_the_cap_are_refused = on_both_loops(_connections_past_the_cap_are_refused)


async def _idle_connections_are_closed() -> None:
    """A connection idle past keepalive_timeout is closed: before a request, between requests,
    or in the middle of one whose headers never end."""
    async with served(ServerLimits(keepalive_timeout=0.3)) as s:
        silent = await s.connect()
        reader, writer = await _keepalive(s)
        slow = await s.connect()
        slow[1].write(b"GET /pods HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        for r, w in [silent, (reader, writer), slow]:
            async with asyncio.timeout(5):
                assert await r.read() == b""
            w.close()


test_idle_connections_are_closed = on_both_loops(_idle_connections_are_closed)


def test_the_connection_cap_leaves_half_the_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    from minikubelet.server import connections

    monkeypatch.setattr("resource.getrlimit", lambda _: (1024, 4096))
    assert connections.connection_limit(4096) == 512
    assert connections.connection_limit(100) == 100


# --- the malformed-request corpus ----------------------------------------------------------

# What a request in the corpus may get: "4xx" (or a closed connection, for bytes that are not
# HTTP) for requests that are malformed; "any" for requests that are odd but valid HTTP (a
# response, but never 5xx). Every request asks the server to close, or is refused by it.
Case = tuple[str, bytes, str]

PATHS = ["/pods", "/pods/", "/healthz", "/healthz/docker", "/metrics", "/exec/x", "/nope"]


def malformed_requests(seed: int = 9, *, port: int = 10255) -> Iterator[Case]:
    """A few thousand requests that are malformed in every way the endpoint has to survive."""
    rng = random.Random(seed)
    host = f"127.0.0.1:{port}".encode()

    def req(line: bytes, *headers: bytes) -> bytes:
        return b"\r\n".join([line, b"Host: " + host, *headers, b"Connection: close", b"", b""])

    # Request lines that are not HTTP/1.x.
    for line in [
        b"GET",
        b"GET /pods",
        b"GET /pods HTTP/1.1 extra",
        b"get /pods HTTP/1.1",
        b"GET /pods HTTP/2.0",
        b"GET /pods HTTP/1.10",
        b"GET /pods HTTPS/1.1",
        b"GET /pods http/1.1",
        b"GET /pods HTTP/1",
        b"GET /pods HTTP/",
        b"GET pods HTTP/1.1",
        b"GET ?watch=1 HTTP/1.1",
        b"GET * HTTP/1.1",
        b"GET example.com:80 HTTP/1.1",
        b"GET /po ds HTTP/1.1",
        b"GET /pods\x00 HTTP/1.1",
        b"GET /pods\t HTTP/1.1",
        b"GET /p\xffods HTTP/1.1",
        b"GET /pods?timeoutSeconds=\xff HTTP/1.1",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1",
        b"GET /pods?" + b"a=b&" * 4000 + b" HTTP/1.1",
        b"SSH-2.0-OpenSSH_9.6",
        b"PRI * HTTP/2.0",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b" GET /pods HTTP/1.1",
        b"GET /pods HTTP/1.1\x00",
    ]:
        yield ("request line", req(line), "4xx")
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        yield (
            "random request line",
            junk.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n\r\n",
            "4xx",
        )
    # Methods the endpoint does not serve, and ones that are not tokens.
    for method in [
        b"BREW", b"PROPFIND", b"PATCH", b"DELETE", b"PUT", b"POST", b"OPTIONS", b"TRACE",
        b"M-SEARCH", b"GE T", b"G\x00T", b"X" * 300, b"get", b"GET\x7f", b"\xffGET",
    ]:  # fmt: skip
        for path in PATHS:
            yield (
                "method",
                req(method + b" " + path.encode() + b" HTTP/1.1", b"Content-Length: 0"),
                "4xx",
            )
    yield ("method", req(b"CONNECT 127.0.0.1:1 HTTP/1.1"), "4xx")
    # Headers that are not headers.
    bad_headers = [
        b"NoColon",
        b"Space Before : colon",
        b": empty name",
        b"Bad(Name): x",
        b"Bad Name: x",
        b"N\xc3\xa4me: x",
        b"X-Folded: a\r\n b",
        b"X-Cr: a\rb",
        b"X-Nul: a\x00b",
        b"X-Ctl: a\x01b",
        b"X-Big: " + b"v" * 9000,
        b"X-" + b"n" * 9000 + b": v",
        b"\r\n".join(b"X-%d: v" % i for i in range(200)),
        b"\r\n".join(b"X-%d: " % i + b"v" * 8000 for i in range(130)),
        b"Content-Length: -1",
        b"Content-Length: abc",
        b"Content-Length: 1, 2",
        b"Content-Length: 0\r\nContent-Length: 1",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5",
        b"Transfer-Encoding: xchunked",
        b"Transfer-Encoding: chunked, gzip",
        b"Host: second.example",
        b"Authorization: Bearer \xff\xfe",
        b"Authorization: \xc3\xa9t\xc3\xa9",
        b"Authorization: Bearer a\x7fb",
        b"Authorization: Bearer a\r\nAuthorization: Bearer b",
    ]
    for header in bad_headers:
        for path in PATHS:
            yield ("header", req(b"GET " + path.encode() + b" HTTP/1.1", header), "4xx")
    # Lenient, as RFC 9112 lets a server be: odd but answered, never with a 5xx.
    yield ("whitespace", req(b"GET  /pods HTTP/1.1"), "any")
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100)))
        # Without a colon a header line is never valid, whatever else it holds.
        line = b"X" + junk.translate(None, b"\r\n:")
        yield ("random header", req(b"GET /pods HTTP/1.1", line), "4xx")
    for path in PATHS:
        yield (
            "no Host",
            b"GET " + path.encode() + b" HTTP/1.1\r\nConnection: close\r\n\r\n",
            "4xx",
        )
        for bad_host in [
            b"evil.example",
            b"evil.example:10255",
            b"127.0.0.1.evil",
            b"\xff",
            b"[::2]",
        ]:
            line = b"GET " + path.encode() + b" HTTP/1.1"
            yield (
                "Host",
                b"\r\n".join([line, b"Host: " + bad_host, b"Connection: close", b"", b""]),
                "4xx",
            )
        # Odd bytes in a header the endpoint ignores are valid HTTP (obs-text): any answer but 5xx.
        yield (
            "ignored header",
            req(b"GET " + path.encode() + b" HTTP/1.1", b"User-Agent: \xff\xfe"),
            "any",
        )
    # Percent-encodings that decode to nothing sensible.
    for encoded in [
        b"%",
        b"%z",
        b"%zz",
        b"%f",
        b"%ff%fe",
        b"%00",
        b"%c0%ae",
        b"%u002e",
        b"%%",
        b"%2",
    ]:
        yield ("path encoding", req(b"GET /pods" + encoded + b" HTTP/1.1"), "4xx")
        yield ("path encoding", req(b"GET /" + encoded + b"/pods HTTP/1.1"), "4xx")
        for query in [b"watch=1&", b"", b"watch=true&"]:
            target = b"/pods?" + query + b"timeoutSeconds=" + encoded
            yield ("query encoding", req(b"GET " + target + b" HTTP/1.1"), "4xx")
        yield ("ignored parameter", req(b"GET /pods?foo=" + encoded + b" HTTP/1.1"), "any")
    # Parameter values the API server would not parse, on every way to ask for pods.
    for value in BAD_TIMEOUTS:
        for pods in [b"/pods", b"/pods/"]:
            for query in [
                b"watch=1&",
                b"watch&",
                b"watch=0&",
                b"",
                b"watch=true&",
                b"resourceVersion=0&",
            ]:
                target = pods + b"?" + query + b"timeoutSeconds=" + query_value(value)
                yield ("timeoutSeconds", req(b"GET " + target + b" HTTP/1.1"), "4xx")
    for _ in range(1000):
        value = "".join(
            rng.choice("0123456789.-+eEinfaINFxX _%") for _ in range(rng.randrange(1, 12))
        )
        if value.isdigit() and len(value.lstrip("0")) <= 5 and int(value) <= MAX_TIMEOUT_SECONDS:
            continue  # a valid timeout
        target = b"/pods?watch=1&timeoutSeconds=" + query_value(value)
        yield ("random timeoutSeconds", req(b"GET " + target + b" HTTP/1.1"), "4xx")
    # Dot segments, however spelled.
    for target in [
        b"/pods/..", b"/../pods", b"/exec/../pods", b"/./pods", b"/pods/./", b"/%2e%2e/pods",
        b"/.%2e/pods", b"/pods/..%2f", b"//../pods", b"/healthz/..", b"/healthz/%2e%2e",
        b"/exec/%2e%2e/%2e%2e/pods", b"/metrics/.", b"/pods/%2E",
    ]:  # fmt: skip
        yield ("dot segments", req(b"GET " + target + b" HTTP/1.1"), "4xx")
    for _ in range(300):
        parts = [
            rng.choice(["pods", "..", ".", "%2e%2e", "%2E", "exec", "healthz", ""])
            for _ in range(4)
        ]
        random_path = "/" + "/".join(parts)
        if random_path.rstrip("/") in ("/pods", "/healthz", "/metrics") or random_path in PATHS:
            continue
        yield ("random path", req(b"GET " + random_path.encode() + b" HTTP/1.1"), "4xx")


def test_the_corpus_is_large_and_varied() -> None:
    cases = list(malformed_requests())
    kinds = {kind for kind, _, _ in cases}
    assert len(cases) > 2000
    assert {"request line", "method", "header", "path encoding", "timeoutSeconds"} <= kinds


async def replay(port: int, cases: list[Case], *, concurrency: int = 16) -> list[str]:
    """Every case against ``port``; what went wrong, one line per failed case."""
    failures: list[str] = []
    queue = list(enumerate(cases))

    async def worker() -> None:
        while queue:
            i, (kind, raw, expect) = queue.pop()
            try:
                reply = await exchange(port, raw)
            except AssertionError as e:
                failures.append(f"#{i} {kind}: {e}")
                continue
            code = reply.status
            allowed = range(400, 500) if expect == "4xx" else range(100, 500)
            if code is not None and code not in allowed:
                failures.append(f"#{i} {kind}: {code} for {raw[:120]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def test_the_malformed_corpus_gets_only_client_errors() -> None:
    async with served() as s:
        s.status.track(make_pod(("a",)))
        s.status.set(make_pod(("a",)).uid, PodStatus(phase=PodPhase.RUNNING))
        sample = list(malformed_requests(port=s.port))[::4]
        failures = await replay(s.port, sample)
        assert failures == [], "\n".join(failures[:30])
        assert s.watches == 0
        assert s.status.subscriber_count == 0
        assert (await exchange(s.port, get("/healthz"))).status == 200
