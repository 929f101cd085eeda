"""Probe semantics: the threshold state machine with a fake clock, handlers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from minikubelet.container.cache import RuntimeCache
from minikubelet.model.spec import (
    ExecAction,
    GRPCAction,
    HTTPGetAction,
    Probe,
    TCPSocketAction,
)
from minikubelet.prober.handlers import OUTPUT_LIMIT, USER_AGENT, ProbeRunner, ProbeTarget
from minikubelet.prober.manager import ProbeManager, period_overrides
from minikubelet.prober.state import Outcome, ProbeKind, ProbeTracker, Result, Skip
from tests.unit.helpers import make_pod, rec

S, F, E = Outcome.SUCCESS, Outcome.FAILURE, Outcome.ERROR


def tracker(kind: ProbeKind, **probe: int) -> ProbeTracker:
    return ProbeTracker(kind, Probe(handler=ExecAction(("true",)), **probe))


@pytest.mark.parametrize(
    ("kind", "initial"),
    [
        (ProbeKind.READINESS, Result.FAILURE),
        (ProbeKind.LIVENESS, Result.SUCCESS),
        (ProbeKind.STARTUP, Result.UNKNOWN),
    ],
    ids=["readiness-starts-failed", "liveness-starts-ok", "startup-starts-unknown"],
)
def test_initial_results(kind: ProbeKind, initial: Result) -> None:
    assert tracker(kind).result is initial


@pytest.mark.parametrize(
    ("kind", "thresholds", "outcomes", "flips", "final"),
    [
        (ProbeKind.LIVENESS, {}, [F, F, F], [False, False, True], Result.FAILURE),
        (ProbeKind.LIVENESS, {}, [F, F, S, F, F], [False] * 5, Result.SUCCESS),
        (ProbeKind.LIVENESS, {"failure_threshold": 1}, [F], [True], Result.FAILURE),
        (ProbeKind.READINESS, {}, [S], [True], Result.SUCCESS),
        (
            ProbeKind.READINESS,
            {"success_threshold": 2},
            [S, F, S, S],
            [False, False, False, True],
            Result.SUCCESS,
        ),
        (
            ProbeKind.READINESS,
            {},
            [S, F, F, F, S],
            [True, False, False, True, True],
            Result.SUCCESS,
        ),
        (ProbeKind.READINESS, {}, [E, E, E, E], [False] * 4, Result.FAILURE),
        (
            ProbeKind.LIVENESS,
            {},
            [F, E, F, E, F],
            [False, False, False, False, True],
            Result.FAILURE,
        ),
        (ProbeKind.STARTUP, {"failure_threshold": 2}, [F, F], [False, True], Result.FAILURE),
    ],
    ids=[
        "liveness-3-failures",
        "liveness-run-broken-by-success",
        "liveness-threshold-1",
        "readiness-first-success",
        "readiness-success-threshold-2",
        "readiness-back-and-forth",
        "errors-never-count",
        "errors-do-not-break-a-run",
        "startup-failure",
    ],
)
def test_thresholds(
    kind: ProbeKind,
    thresholds: dict[str, int],
    outcomes: list[Outcome],
    flips: list[bool],
    final: Result,
) -> None:
    t = tracker(kind, **thresholds)
    assert [t.record(o) for o in outcomes] == flips
    assert t.result is final


def test_liveness_failure_and_startup_verdicts_hold_the_instance() -> None:
    live = tracker(ProbeKind.LIVENESS, failure_threshold=1)
    live.record(F)
    assert live.decide(now=100, running=True, started_at=0, started=True) is Skip.HELD
    startup = tracker(ProbeKind.STARTUP)
    startup.record(S)
    assert startup.result is Result.SUCCESS
    assert startup.decide(now=100, running=True, started_at=0, started=True) is Skip.HELD


@pytest.mark.parametrize(
    ("kind", "now", "running", "started", "expected"),
    [
        (ProbeKind.READINESS, 104.9, True, True, Skip.INITIAL_DELAY),
        (ProbeKind.READINESS, 105.0, True, True, Skip.PROBE),
        (ProbeKind.READINESS, 110.0, False, True, Skip.NOT_RUNNING),
        (ProbeKind.LIVENESS, 110.0, True, False, Skip.NOT_STARTED),
        (ProbeKind.READINESS, 110.0, True, False, Skip.NOT_STARTED),
        (ProbeKind.STARTUP, 106.0, True, False, Skip.PROBE),
    ],
    ids=[
        "before-initial-delay",
        "at-initial-delay-floor",
        "container-not-running",
        "liveness-gated-by-startup",
        "readiness-gated-by-startup",
        "startup-runs-while-not-started",
    ],
)
def test_decide(kind: ProbeKind, now: float, running: bool, started: bool, expected: Skip) -> None:
    t = tracker(kind, initial_delay_seconds=5)
    assert t.decide(now=now, running=running, started_at=100.0, started=started) is expected


def test_not_running_is_a_failure() -> None:
    t = tracker(ProbeKind.READINESS)
    t.record(S)
    assert t.not_running()
    assert t.result is Result.FAILURE
    assert not t.not_running()


def test_period_annotation() -> None:
    value = "web.readiness=250, web.liveness=500,bad,web.startup=10,x.nope=100"
    annotated = make_pod(("web",), annotations={"probes.minikubelet.io/period-ms": value})
    assert period_overrides(make_pod(("web",))) == {}
    # Too short (10 ms), malformed and unknown kinds are ignored.
    assert period_overrides(annotated) == {
        ("web", ProbeKind.READINESS): 0.25,
        ("web", ProbeKind.LIVENESS): 0.5,
    }


# --- handlers against real loopback servers ---


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        match request.path:
            case "/ok":
                return web.Response(text="fine")
            case "/missing":
                return web.Response(status=404, text="no such page")
            case "/moved":
                raise web.HTTPFound("/ok")
            case "/away":
                raise web.HTTPFound("http://192.0.2.1:9/elsewhere")
            case "/loop":
                raise web.HTTPFound("/loop")
            case "/slow":
                await asyncio.sleep(2)
                return web.Response(text="late")
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


class NoExec:
    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        raise AssertionError("no exec expected")


@pytest.mark.parametrize(
    ("path", "outcome", "detail"),
    [
        ("/ok", S, ""),
        ("/missing", F, "HTTP probe failed with statuscode: 404"),
        ("/moved", S, ""),
        ("/away", S, "redirects to http://192.0.2.1:9/elsewhere"),
        ("/loop", S, ""),
        ("/slow", F, "context deadline exceeded"),
    ],
    ids=["200", "404", "same-host-302", "cross-host-302", "redirect-loop-ends-3xx", "timeout"],
)
async def test_http_probe(
    http_server: tuple[int, list[web.Request]], path: str, outcome: Outcome, detail: str
) -> None:
    port, seen = http_server
    runner = ProbeRunner(NoExec())
    try:
        got, output = await runner.run(
            HTTPGetAction(port="web", path=path), ProbeTarget("c", "127.0.0.1", {"web": port}), 0.5
        )
    finally:
        await runner.close()
    assert got is outcome
    assert detail in output
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert seen[0].headers["Accept"] == "*/*"


async def test_tcp_probe_open_and_closed_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        runner = ProbeRunner(NoExec())
        target = ProbeTarget("c", "127.0.0.1", {})
        assert (await runner.run(TCPSocketAction(port=port), target, 1))[0] is S
    outcome, output = await runner.run(TCPSocketAction(port=port), target, 1)
    assert outcome is F
    assert "connection refused" in output


async def test_unknown_named_port_is_an_error_not_a_failure() -> None:
    outcome, output = await ProbeRunner(NoExec()).run(
        TCPSocketAction(port="metrics"), ProbeTarget("c", "127.0.0.1", {}), 1
    )
    assert outcome is E
    assert "metrics" in output


class TimedExec:
    def __init__(self, code: int, delay: float = 0.0) -> None:
        self.code, self.delay = code, delay

    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        if timeout is not None and self.delay > timeout:
            raise TimeoutError
        return self.code, b"out\n"


@pytest.mark.parametrize(
    ("executor", "outcome"),
    [(TimedExec(0), S), (TimedExec(2), F), (TimedExec(0, delay=5), F)],
    ids=["exit-0", "exit-2", "timeout"],
)
async def test_exec_probe(executor: TimedExec, outcome: Outcome) -> None:
    got, _ = await ProbeRunner(executor).run(ExecAction(("check",)), ProbeTarget("c", "", {}), 1)
    assert got is outcome


async def test_manager_probes_a_new_container_at_once_and_wakes_its_pod() -> None:
    cache = RuntimeCache()
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 10}
    pod = make_pod(("a",), container_extra={"a": {"readinessProbe": probe}})
    woke = asyncio.Event()
    events: list[tuple[str, str]] = []
    manager = ProbeManager(
        TimedExec(0),
        cache,
        event=lambda pod, type_, reason, message, path: events.append((reason, message)),
        clock=time.time,
    )
    # Started after the agent (the manager) was: not an adopted container.
    cache.put(rec(pod, "a", started=time.time() + 0.001, cid="c1"))
    state = cache.pod_state(pod.uid)
    assert manager.view(pod, state).ready == {"a": False}  # readiness starts failed
    manager.sync_pod(pod, state, woke.set)
    # Well before the 10 s period: a new container's first probe is not delayed.
    await asyncio.wait_for(woke.wait(), 2)
    assert manager.view(pod, state).ready == {"a": True}
    assert manager.unhealthy(pod) == {}
    assert events == []
    await manager.close()


def test_a_start_stamped_just_ahead_of_the_clock_is_probed() -> None:
    t = tracker(ProbeKind.READINESS)
    assert t.decide(now=99.999, running=True, started_at=100.0, started=True) is Skip.PROBE


# --- hostile answers and a short agent ---


@contextlib.contextmanager
def out_of_files() -> Iterator[None]:
    """Every descriptor this process may open, taken: as an agent with too many pods is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 16, hard))
    taken: list[int] = []
    try:
        with contextlib.suppress(OSError):
            while True:
                taken.append(os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC))
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    "action",
    [TCPSocketAction(port="p"), HTTPGetAction(port="p", path="/")],
    ids=["tcp", "http"],
)
async def test_a_probe_the_agent_has_no_descriptor_for_is_an_error(
    action: TCPSocketAction | HTTPGetAction,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = ProbeTarget("c", "127.0.0.1", {"p": listener.getsockname()[1]})
        with out_of_files():
            outcome, output = await ProbeRunner(NoExec()).run(action, target, 1)
    assert outcome is E
    assert "too many open files" in output


async def test_a_grpc_probe_the_agent_has_no_descriptor_for_is_an_error() -> None:
    import grpc
    import grpc_health.v1.health_pb2_grpc  # noqa: F401  (imported by the probe, before the test)

    # gRPC's poller lives while a channel does; with it up, the failure is the socket's.
    keep = grpc.aio.insecure_channel("127.0.0.1:9")
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            target = ProbeTarget("c", "127.0.0.1", {})
            with out_of_files():
                outcome, output = await ProbeRunner(NoExec()).run(
                    GRPCAction(port=listener.getsockname()[1]), target, 1
                )
    finally:
        await keep.close()
    assert outcome is E, output
    assert "Too many open files" in output


async def serve_raw(answer: bytes, *, endless: bool = False) -> asyncio.Server:
    """A server that sends ``answer`` to any request, then, if ``endless``, body forever."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            while endless:
                writer.write(b"x" * 65536)
                await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_an_http_header_line_past_the_limit_fails_the_probe() -> None:
    server = await serve_raw(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n")
    async with server:
        port = server.sockets[0].getsockname()[1]
        outcome, output = await ProbeRunner(NoExec()).run(
            HTTPGetAction(port=port, path="/"), ProbeTarget("c", "127.0.0.1", {}), 1
        )
    assert outcome is F
    assert "header line too long" in output


async def test_an_endless_http_body_is_read_only_to_the_limit() -> None:
    server = await serve_raw(b"HTTP/1.1 500 Oops\r\n\r\n", endless=True)
    async with server:
        port = server.sockets[0].getsockname()[1]
        began = time.monotonic()
        outcome, output = await ProbeRunner(NoExec()).run(
            HTTPGetAction(port=port, path="/"), ProbeTarget("c", "127.0.0.1", {}), 5
        )
    assert outcome is F
    assert time.monotonic() - began < 2.5  # not the 5 s timeout: it stopped reading
    assert len(output) <= OUTPUT_LIMIT + 100
