"""Lifecycle hooks: exec through a stand-in executor, httpGet against a real loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from minikubelet.lifecycle import USER_AGENT, HookError, HookRunner, HookTarget, http_url
from minikubelet.model.spec import ExecAction, HTTPGetAction, SleepAction, TCPSocketAction


class Executor:
    """Answers execs with a fixed result; records what was asked."""

    def __init__(self, code: int, output: bytes = b"") -> None:
        self.code = code
        self.output = output
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        self.calls.append((container_id, tuple(command)))
        return self.code, self.output


TARGET = HookTarget("default/p-n", "c", "cid", "127.0.0.1", {"http": 0})


async def test_exec_hook_succeeds_on_exit_zero() -> None:
    executor = Executor(0)
    await HookRunner(executor).run("PostStart", ExecAction(("true",)), TARGET, timeout=5)
    assert executor.calls == [("cid", ("true",))]


async def test_exec_hook_failure_names_the_command_code_and_output() -> None:
    runner = HookRunner(Executor(3, b"no space left\n"))
    with pytest.raises(HookError) as err:
        await runner.run("PostStart", ExecAction(("sh", "-c", "exit 3")), TARGET, timeout=5)
    message = str(err.value)
    assert "PostStart hook for Container 'c' in Pod 'default/p-n' failed" in message
    assert "exited with 3" in message
    assert "no space left" in message


async def test_hooks_are_bounded_by_their_timeout() -> None:
    with pytest.raises(HookError, match="did not finish within 0s"):
        await HookRunner(Executor(0)).run("PreStop", SleepAction(5), TARGET, timeout=0.05)


async def test_tcp_socket_hooks_fail_when_run() -> None:
    with pytest.raises(HookError, match="not supported"):
        await HookRunner(Executor(0)).run("PreStop", TCPSocketAction(80), TARGET, timeout=1)


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=500, text="broken, and hooks do not care")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def test_http_hook_ignores_the_status_and_sends_kubelet_headers(
    server: tuple[int, list[web.Request]],
) -> None:
    port, seen = server
    target = HookTarget("default/p-n", "c", "cid", "127.0.0.1", {"http": port})
    runner = HookRunner(Executor(0))
    try:
        action = HTTPGetAction(port="http", path="drain", headers=(("X-Reason", "stop"),))
        await runner.run("PreStop", action, target, timeout=5)
    finally:
        await runner.close()
    [request] = seen
    assert request.path == "/drain"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["X-Reason"] == "stop"


async def test_http_hook_fails_on_a_transport_error() -> None:
    runner = HookRunner(Executor(0))
    try:
        with pytest.raises(HookError, match=re.escape("failed - error: Get 'http://127.0.0.1:1/'")):
            # Nothing listens on port 1 of loopback: the connection is refused.
            await runner.run("PreStop", HTTPGetAction(port=1), TARGET, timeout=5)
    finally:
        await runner.close()


@pytest.mark.parametrize(
    ("action", "pod_ip", "url"),
    [
        (HTTPGetAction(port=80), "10.0.0.5", "http://10.0.0.5:80/"),
        (HTTPGetAction(port="http", path="/x"), "", "http://127.0.0.1:8080/x"),
        (HTTPGetAction(port=443, scheme="HTTPS", host="fd00::1"), "", "https://[fd00::1]:443/"),
    ],
    ids=["pod-ip", "host-network-named-port", "https-ipv6-host"],
)
def test_http_url(action: HTTPGetAction, pod_ip: str, url: str) -> None:
    target = HookTarget("default/p-n", "c", "cid", pod_ip, {"http": 8080})
    assert http_url(action, target) == url


def test_unknown_named_port_is_an_error() -> None:
    with pytest.raises(HookError, match="names no port"):
        http_url(HTTPGetAction(port="metrics"), TARGET)


class RecordingExec(Executor):
    """Records the timeout each exec is given; hangs when asked to."""

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__(0)
        self.hang = hang
        self.timeouts: list[float | None] = []
        self.cancelled = False

    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        self.timeouts.append(timeout)
        if self.hang:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return 0, b""


async def test_exec_hooks_give_the_executor_their_deadline() -> None:
    """The executor kills an exec past its timeout; a hook's used to be given none."""
    executor = RecordingExec()
    await HookRunner(executor).run("PreStop", ExecAction(("true",)), TARGET, timeout=7)
    assert executor.timeouts == [7]


async def test_a_hanging_exec_hook_is_given_up_at_its_deadline() -> None:
    executor = RecordingExec(hang=True)
    with pytest.raises(HookError, match="did not finish within 0s"):
        await HookRunner(executor).run("PostStart", ExecAction(("hang",)), TARGET, timeout=0.1)
    # Cancelled, not abandoned: the executor's cancellation path kills the command.
    assert executor.cancelled


async def test_an_endless_http_hook_body_is_read_only_to_a_limit() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
            while True:
                writer.write(b"x" * 65536)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    runner = HookRunner(Executor(0))
    try:
        async with server:
            port = server.sockets[0].getsockname()[1]
            began = time.monotonic()
            await runner.run("PreStop", HTTPGetAction(port=port), TARGET, timeout=5)
            assert time.monotonic() - began < 2.5  # well before the deadline: it stopped reading
    finally:
        await runner.close()
