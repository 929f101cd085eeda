"""The status endpoint under abuse, through the real agent process.

The unit tests (tests/unit/test_server_abuse.py) pin each mechanism down; here
the same attacks go to an agent started as in production (uvloop, its own
open-file limit, real pods), and what is measured is what an operator would
see: the agent's resident memory, its answers to /pods and /healthz, and its
log.

Assumes the hard RLIMIT_NOFILE lets this process hold ~2,100 sockets: the
``open_files`` fixture raises the test process's own soft limit for that
(skipping when the hard limit is too low) before starting the agent, which
inherits it and raises its own to the hard limit at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.conftest import Agent, pod_manifest, sh, wait_until
from tests.unit.test_server_abuse import (
    BAD_TIMEOUTS,
    Reply,
    exchange,
    get,
    malformed_requests,
    query_value,
    replay,
)

pytestmark = pytest.mark.docker

IDLE_CONNECTIONS = 1000
WATCH_CAP = 1000  # ServerLimits.max_watches, the agent's default
SOCKETS_NEEDED = IDLE_CONNECTIONS + WATCH_CAP + 200
# Growth of the agent's RSS allowed while 1,000 idle connections and stalled watchers are
# held: generous (the measured growth is a fraction of it), yet far below what an unbounded
# buffer or backlog would reach.
RSS_GROWTH_BOUND = 64 << 20


@pytest.fixture
def open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SOCKETS_NEEDED + 1024
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs a hard RLIMIT_NOFILE of {wanted}; it is {hard}")
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    """Sockets a test holds open; all closed at the end, whatever happened."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def ask(agent: Agent, raw: bytes, *, timeout: float = 10.0) -> Reply:
    return asyncio.run(exchange(agent.port, raw, timeout=timeout))


def status_body(reply: Reply, code: int, reason: str) -> dict[str, Any]:
    assert reply.status == code, reply.raw[:400]
    body: dict[str, Any] = reply.json()
    assert (body["kind"], body["apiVersion"], body["status"]) == ("Status", "v1", "Failure")
    assert (body["code"], body["reason"]) == (code, reason)
    return body


def rss(agent: Agent) -> int:
    assert agent.proc is not None
    return int(psutil.Process(agent.proc.pid).memory_info().rss)


def connect(agent: Agent, held: list[socket.socket], *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    held.append(sock)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", agent.port))
    return sock


def read_head(sock: socket.socket) -> bytes:
    head = b""
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in head and time.monotonic() < deadline:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return head


# Loggers whose errors would mean the endpoint itself failed (the supervisor logs a part
# that died, asyncio an exception no task caught).
SERVER_LOGGERS = ("minikubelet.server", "minikubelet.supervisor", "aiohttp", "asyncio")


def server_errors(agent: Agent) -> list[str]:
    """ERROR and CRITICAL lines of the server's loggers in the agent's log."""
    errors = []
    for line in agent.log().splitlines():
        fields = line.split(" ", 4)  # date, time, level, logger:, message
        if len(fields) < 4 or fields[2] not in ("ERROR", "CRITICAL"):
            continue
        if fields[3].rstrip(":").startswith(SERVER_LOGGERS):
            errors.append(line)
    return errors


def answers(agent: Agent) -> bool:
    return ask(agent, get("/pods")).status == 200 and ask(agent, get("/healthz")).status == 200


def reset(sock: socket.socket) -> bool:
    """Whether the peer reset the connection (state CLOSE; a close leaves CLOSE_WAIT),
    seen without reading, so the reset is still there for the next read to report."""
    tcp_close = 7  # include/net/tcp_states.h
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == tcp_close


def _drain(sock: socket.socket) -> None:
    """Read what the kernel already holds, until the connection ends (bounded by a size)."""
    for _ in range(10_000):
        if not sock.recv(65536):
            return


def test_healthz_in_the_kubelets_words(agent: Agent) -> None:
    reply = ask(agent, get("/healthz?verbose"))
    assert reply.status == 200
    lines = reply.body.decode().splitlines()
    assert lines[0] == "[+]ping ok"
    assert "[+]docker ok" in lines
    assert lines[-1] == "healthz check passed"
    assert all(line.startswith("[+]") for line in lines[:-1]), lines
    one = ask(agent, get("/healthz/docker"))
    assert (one.status, one.body) == (200, b"ok")
    status_body(ask(agent, get("/healthz/nope")), 404, "NotFound")
    excluded = ask(agent, get("/healthz?verbose&exclude=docker"))
    assert "[+]docker excluded: ok" in excluded.body.decode().splitlines()


def test_a_rebinding_host_is_refused(agent: Agent) -> None:
    for host in ["evil.example", f"evil.example:{agent.port}", "127.0.0.1.nip.io", "[::2]"]:
        body = status_body(ask(agent, get("/pods", host=host)), 403, "Forbidden")
        assert "is not allowed" in body["message"]
    for host in [f"127.0.0.1:{agent.port}", f"localhost:{agent.port}", f"[::1]:{agent.port}"]:
        assert ask(agent, get("/pods", host=host)).status == 200, host


def test_bad_parameters_and_credentials_are_client_errors(
    make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    agent = make_agent("--auth-token-file", str(token_file), start=False)
    agent.start(wait=False)
    authorized = "Authorization: Bearer s3cret"
    wait_until(
        lambda: ask(agent, get("/healthz", authorized)).body == b"ok",
        timeout=30,
        what="the agent with a token to answer /healthz",
    )
    for value in BAD_TIMEOUTS:
        target = b"/pods?watch=1&timeoutSeconds=" + query_value(value)
        body = status_body(ask(agent, get(target, authorized)), 400, "BadRequest")
        assert body["message"].startswith("timeoutSeconds:"), body
    for credentials in [b"Bearer \xff\xfe", b"Bearer s3cret\xff", b"\xc3\xa9"]:
        reply = ask(agent, get("/pods", b"Authorization: " + credentials))
        assert status_body(reply, 400, "BadRequest")["message"].startswith("Authorization:")
    status_body(ask(agent, get("/pods", "Authorization: Bearer nope")), 401, "Unauthorized")
    assert ask(agent, get("/pods", authorized)).status == 200
    assert server_errors(agent) == []


def test_watches_past_the_cap_get_429(
    agent: Agent, open_files: None, held: list[socket.socket]
) -> None:
    request = b"GET /pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for _ in range(WATCH_CAP):
        sock = connect(agent, held)
        sock.sendall(request)
        assert read_head(sock).startswith(b"HTTP/1.1 200")
    reply = ask(agent, get("/pods?watch=1"))
    status_body(reply, 429, "TooManyRequests")
    assert reply.headers["retry-after"] == "1"
    assert answers(agent)  # lists and health are not watches
    for sock in held:
        sock.close()

    def watch_admitted() -> bool:
        with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
            sock.sendall(request)
            return read_head(sock).startswith(b"HTTP/1.1 200")

    wait_until(watch_admitted, timeout=30, what="a watch admitted once the others left")


def test_idle_connections_and_a_stalled_watcher_leave_memory_bounded(
    make_agent: Callable[..., Agent], open_files: None, held: list[socket.socket]
) -> None:
    agent = make_agent()
    for _ in range(20):  # warm up: imports, caches and buffers a first request allocates
        assert answers(agent)
    with contextlib.closing(socket.create_connection(("127.0.0.1", agent.port))) as warm:
        warm.sendall(b"GET /pods?watch=1&timeoutSeconds=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_head(warm).startswith(b"HTTP/1.1 200")
    before = rss(agent)

    stalled = [connect(agent, held, rcvbuf=4096) for _ in range(3)]
    for sock in stalled:  # they never read a byte, not even the response headers
        sock.sendall(b"GET /pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for _ in range(IDLE_CONNECTIONS):
        connect(agent, held)  # never sends anything
    for name in ("churn-a", "churn-b"):
        agent.write(f"{name}.yaml", pod_manifest(name, [sh("c", "sleep 3600")]))
    agent.wait_running("churn-a")
    agent.wait_running("churn-b")
    for name in ("churn-a", "churn-b"):
        agent.remove(f"{name}.yaml")
    wait_until(lambda: agent.pod_list()["items"] is None, timeout=30, what="the pods gone")
    wait_until(lambda: not agent.containers(), timeout=30, what="their containers removed")

    assert answers(agent)
    grown = rss(agent) - before
    assert grown < RSS_GROWTH_BOUND, f"RSS grew by {grown >> 20} MiB"
    for sock in held:
        sock.close()
    wait_until(lambda: answers(agent), timeout=10, what="the agent answering")
    assert ask(agent, get("/healthz?verbose")).body.decode().splitlines()[-1] == (
        "healthz check passed"
    )
    assert server_errors(agent) == []


def test_a_watcher_that_never_reads_is_dropped(agent: Agent, held: list[socket.socket]) -> None:
    stalled = connect(agent, held, rcvbuf=4096)
    stalled.sendall(b"GET /pods?watch=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    before = rss(agent)
    # Each event carries the whole pod: 8 pods of ~200 KB, each changing a few times as it
    # starts, are more than the socket buffers of both ends hold.
    pad = "x" * 200_000
    for i in range(8):
        manifest = pod_manifest(f"big{i}", [sh("c", "sleep 3600")])
        manifest["metadata"]["annotations"] = {"pad": pad}
        agent.write(f"big{i}.yaml", manifest)
    wait_until(
        lambda: reset(stalled),
        timeout=90,
        what="the stalled watcher dropped after the 10 s write timeout",
    )
    assert answers(agent)
    for i in range(8):
        agent.wait_running(f"big{i}")
    # What stays is the pods themselves, not the watcher's backlog or buffers.
    grown = rss(agent) - before
    assert grown < RSS_GROWTH_BOUND, f"RSS grew by {grown >> 20} MiB"
    # The agent reset the connection (a close would have waited to flush to a non-reader).
    with pytest.raises(ConnectionResetError):
        _drain(stalled)
    assert server_errors(agent) == []


def test_a_malformed_corpus_gets_only_client_errors(agent: Agent) -> None:
    agent.write("web.yaml", pod_manifest("web", [sh("c", "sleep 3600")]))
    agent.wait_running("web")
    cases = list(malformed_requests(port=agent.port))
    assert len(cases) > 2000
    failures = asyncio.run(replay(agent.port, cases))
    assert failures == [], "\n".join(failures[:30])
    assert agent.proc is not None
    assert agent.proc.poll() is None
    assert answers(agent)
    health = ask(agent, get("/healthz?verbose")).body.decode().splitlines()
    assert health[-1] == "healthz check passed", health
    assert agent.pod("web") is not None
    # The garbage is never logged as an error with a traceback (the one DEBUG line each
    # is tests/unit/test_server_abuse.py's to check).
    assert server_errors(agent) == []
