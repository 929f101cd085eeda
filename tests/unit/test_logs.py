"""Container logs without Docker: the stream decoder, the request's parameters and
refusals, the choice of instance, and the endpoint over real HTTP with a fake source."""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import MultiDict

from minikubelet.model.spec import Pod
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.logs import (
    LogDecoder,
    LogOptions,
    LogReader,
    TooManyLogStreamsError,
    kubelet_timestamp,
)
from minikubelet.server.app import ServerDeps, make_app
from minikubelet.server.errors import StatusError
from minikubelet.server.logs import (
    LogRequest,
    choose_container,
    container_to_read,
    parse_log_request,
)
from minikubelet.status.manager import StatusManager
from minikubelet.status.types import (
    ContainerStatus,
    PodPhase,
    PodStatus,
    StateRunning,
    StateTerminated,
    StateWaiting,
)
from tests.unit.helpers import make_pod

# --- timestamps and the stream decoder ---


@pytest.mark.parametrize(
    ("docker", "kubelet"),
    [
        ("2026-11-30T15:06:30.421061055Z", "2026-11-30T15:06:30.421061055Z"),
        ("2026-11-30T15:06:30.731113440Z", "2026-11-30T15:06:30.73111344Z"),
        ("2026-11-30T15:06:30.100000000Z", "2026-11-30T15:06:30.1Z"),
        ("2026-11-30T15:06:30.000000000Z", "2026-11-30T15:06:30Z"),
        ("2026-11-30T15:06:30.500000000+01:00", "2026-11-30T15:06:30.5+01:00"),
        ("2026-11-30T15:06:30Z", "2026-11-30T15:06:30Z"),
    ],
    ids=["all-digits", "one-zero", "many-zeros", "whole-second", "offset", "no-fraction"],
)
def test_timestamps_are_written_as_rfc3339nano(docker: str, kubelet: str) -> None:
    assert kubelet_timestamp(docker.encode()) == kubelet.encode()


def frame(payload: bytes, stream: int = 1) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def feed_all(decoder: LogDecoder, data: bytes, step: int) -> bytes:
    return b"".join(decoder.feed(data[i : i + step]) for i in range(0, len(data), step))


STAMPED = [
    b"2026-11-30T15:06:30.100000000Z line one\n",
    b"2026-11-30T15:06:31.000000000Z err two\n",
    b"2026-11-30T15:06:32.123456789Z three\n",
]
STAMPED_OUT = (
    b"2026-11-30T15:06:30.1Z line one\n"
    b"2026-11-30T15:06:31Z err two\n"
    b"2026-11-30T15:06:32.123456789Z three\n"
)


@pytest.mark.parametrize("step", [1, 3, 8, 9, 1000], ids=lambda s: f"pieces-of-{s}")
def test_multiplexed_frames_split_anywhere_decode_the_same(step: int) -> None:
    stream = frame(b"out 1\n") + frame(b"err 1\n", 2) + frame(b"") + frame(b"x" * 300)
    decoder = LogDecoder(multiplexed=True, timestamps=False)
    assert feed_all(decoder, stream, step) == b"out 1\nerr 1\n" + b"x" * 300


@pytest.mark.parametrize("step", [1, 5, 31, 1000], ids=lambda s: f"pieces-of-{s}")
def test_timestamps_rewritten_per_frame_and_per_raw_line(step: int) -> None:
    framed = b"".join(frame(m, 1 + i % 2) for i, m in enumerate(STAMPED))
    decoder = LogDecoder(multiplexed=True, timestamps=True)
    assert feed_all(decoder, framed, step) == STAMPED_OUT
    # A TTY's stream is raw: messages end at newlines.
    decoder = LogDecoder(multiplexed=False, timestamps=True)
    assert feed_all(decoder, b"".join(STAMPED), step) == STAMPED_OUT


def test_text_that_is_no_timestamp_passes_whole() -> None:
    decoder = LogDecoder(multiplexed=True, timestamps=True)
    long_word = b"y" * 100
    assert decoder.feed(frame(long_word) + frame(b"2026-01-01T00:00:00.5Z ok\n")) == (
        long_word + b"2026-01-01T00:00:00.5Z ok\n"
    )


@pytest.mark.parametrize("limit", [1, 7, 10, 25], ids=lambda n: f"limit-{n}")
def test_limit_bytes_cuts_the_output_and_ends_it(limit: int) -> None:
    decoder = LogDecoder(multiplexed=True, timestamps=False, limit_bytes=limit)
    out = feed_all(decoder, frame(b"0123456789\n") * 3, 4)
    assert out == (b"0123456789\n" * 3)[:limit]
    assert decoder.done == (limit <= 33)
    assert decoder.feed(frame(b"more\n")) == b""


def test_limit_counts_the_timestamps_too() -> None:
    decoder = LogDecoder(multiplexed=True, timestamps=True, limit_bytes=30)
    assert decoder.feed(b"".join(frame(m) for m in STAMPED)) == STAMPED_OUT[:30]


# --- the request's parameters ---

NOW = 1_800_000_000.0


def parse(query: str, *, legacy_tail: bool = False) -> LogRequest:
    pairs = [p.partition("=") for p in query.split("&") if p]
    query_dict = MultiDict((name, value) for name, _, value in pairs)
    return parse_log_request(query_dict, pod_name="p", now=NOW, legacy_tail=legacy_tail)


@pytest.mark.parametrize(
    ("query", "container", "previous", "options"),
    [
        ("", "", False, LogOptions()),
        (
            "container=b&follow=true&previous=1&timestamps=yes",
            "b",
            True,
            LogOptions(follow=True, timestamps=True),
        ),
        ("follow=false&previous=0&timestamps=FALSE", "", False, LogOptions()),
        ("follow", "", False, LogOptions(follow=True)),
        ("tailLines=0&limitBytes=1", "", False, LogOptions(tail=0, limit_bytes=1)),
        ("tailLines=+5&tailLines=x", "", False, LogOptions(tail=5)),
        ("sinceSeconds=10", "", False, LogOptions(since=NOW - 10)),
        ("sinceSeconds=9223372036854775807", "", False, LogOptions()),
        (
            "sinceTime=2027-01-15T08:00:00Z",
            "",
            False,
            LogOptions(since=datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()),
        ),
        (
            "sinceTime=2027-01-15T10:30:00.75+02:30",
            "",
            False,
            LogOptions(since=datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()),
        ),
        ("sinceTime=&sinceSeconds=5", "", False, LogOptions(since=NOW - 5)),
        ("insecureSkipTLSVerifyBackend=true&unknown=1", "", False, LogOptions()),
    ],
    ids=[
        "none",
        "bools-true",
        "bools-false",
        "bare-bool",
        "zero-tail",
        "first-value-counts",
        "since-seconds",
        "since-seconds-before-1970",
        "since-time-utc",
        "since-time-offset-fraction-dropped",
        "empty-since-time-is-unset",
        "ignored",
    ],
)
def test_log_parameters_read_as_the_api_server_reads_them(
    query: str, container: str, previous: bool, options: LogOptions
) -> None:
    wanted = parse(query)
    assert (wanted.container, wanted.previous, wanted.options) == (container, previous, options)


def test_the_legacy_tail_parameter_on_the_kubelet_path() -> None:
    assert parse("tail=3", legacy_tail=True).options.tail == 3
    assert parse("tailLines=3&tail=all", legacy_tail=True).options.tail is None
    assert parse("tail=3").options.tail is None


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("tailLines=abc", 400, 'tailLines: strconv.ParseInt: parsing "abc": invalid syntax'),
        ("tailLines=", 400, 'tailLines: strconv.ParseInt: parsing "": invalid syntax'),
        ("limitBytes=1.5", 400, 'limitBytes: strconv.ParseInt: parsing "1.5": invalid syntax'),
        (
            "sinceSeconds=9223372036854775808",
            400,
            'sinceSeconds: strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
        (
            "tailLines=" + "9" * 4000,
            400,
            'tailLines: strconv.ParseInt: parsing "' + "9" * 64 + '...": value out of range',
        ),
        (
            "sinceTime=2027-01-15",
            400,
            'sinceTime: parsing time "2027-01-15" as "2006-01-02T15:04:05Z07:00"',
        ),
        ("sinceTime=2027-02-30T00:00:00Z", 400, "sinceTime: parsing time"),
        ("tail=x", 400, 'tail: strconv.ParseInt: parsing "x": invalid syntax'),
        (
            "tailLines=-1",
            422,
            'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: '
            "must be greater than or equal to 0",
        ),
        (
            "limitBytes=0&sinceSeconds=0",
            422,
            'PodLogOptions "p" is invalid: [limitBytes: Invalid value: 0: must be greater '
            "than 0, sinceSeconds: Invalid value: 0: must be greater than 0]",
        ),
        (
            "sinceSeconds=5&sinceTime=2027-01-15T08:00:00Z",
            422,
            'PodLogOptions "p" is invalid: : Forbidden: at most one of `sinceTime` or '
            "`sinceSeconds` may be specified",
        ),
    ],
    ids=[
        "letters",
        "empty",
        "fraction",
        "int64-overflow",
        "huge",
        "date-only",
        "no-such-day",
        "legacy-tail",
        "negative-tail",
        "two-invalid",
        "both-since",
    ],
)
def test_bad_log_parameters_are_refused_naming_the_field(
    query: str, code: int, message: str
) -> None:
    with pytest.raises(StatusError) as caught:
        parse(query, legacy_tail=query.startswith("tail="))
    assert caught.value.code == code
    assert caught.value.message.startswith(message)


# --- which container, which instance ---


def test_one_container_is_chosen_without_a_name() -> None:
    pod = make_pod(("a",), init=("i",))
    assert choose_container(pod, "") == "a"
    assert choose_container(pod, "i") == "i"


def test_several_containers_need_a_name() -> None:
    with pytest.raises(StatusError) as caught:
        choose_container(make_pod(("a", "b")), "")
    assert caught.value.code == 400
    assert caught.value.message == (
        f"a container name must be specified for pod {make_pod().name}, choose one of: [a b]"
    )
    with pytest.raises(StatusError) as caught:
        choose_container(make_pod(("a", "b"), init=("i1", "i2")), "")
    assert caught.value.message.endswith(
        "choose one of: [a b] or one of the init containers: [i1 i2]"
    )


def test_an_unknown_container_is_not_valid() -> None:
    pod = make_pod(("a",))
    with pytest.raises(StatusError) as caught:
        choose_container(pod, "x")
    assert (caught.value.code, caught.value.message) == (
        400,
        f"container x is not valid for pod {pod.name}",
    )


def terminated(cid: str, code: int = 1) -> StateTerminated:
    return StateTerminated(code, "Error", 1.0, 2.0, container_id=cid)


def status_with(state: Any, last: StateTerminated | None = None, cid: str = "") -> PodStatus:
    container = ContainerStatus(
        name="a", state=state, last_state=last, ready=False, restart_count=1, image="i",
        container_id=cid,
    )  # fmt: skip
    return PodStatus(phase=PodPhase.RUNNING, container_statuses=(container,))


@pytest.mark.parametrize(
    ("status", "previous", "expected"),
    [
        (status_with(StateRunning(1.0), cid="docker://run"), False, "run"),
        (status_with(StateRunning(1.0), terminated("docker://old"), "docker://run"), True, "old"),
        (status_with(terminated("docker://dead"), cid="docker://dead"), False, "dead"),
        (status_with(terminated(""), terminated("docker://before")), False, "before"),
        (
            status_with(StateWaiting("CrashLoopBackOff"), terminated("docker://crashed")),
            False,
            "crashed",
        ),
        (status_with(StateWaiting("CrashLoopBackOff"), terminated("docker://c")), True, "c"),
    ],
    ids=[
        "running",
        "previous",
        "terminated",
        "terminated-without-id",
        "crash-loop",
        "crash-loop-previous",
    ],
)
def test_the_instance_read_is_the_kubelets_choice(
    status: PodStatus, previous: bool, expected: str
) -> None:
    assert container_to_read(status, "p", "a", previous) == expected


@pytest.mark.parametrize(
    ("status", "previous", "message"),
    [
        (
            status_with(StateRunning(1.0), cid="docker://run"),
            True,
            'previous terminated container "a" in pod "p" not found',
        ),
        (
            status_with(StateWaiting("ContainerCreating")),
            False,
            'container "a" in pod "p" is waiting to start: ContainerCreating',
        ),
        (
            status_with(StateWaiting("ErrImagePull")),
            False,
            'container "a" in pod "p" is waiting to start: image can\'t be pulled',
        ),
        (
            status_with(StateWaiting("ImagePullBackOff")),
            False,
            'container "a" in pod "p" is waiting to start: trying and failing to pull image',
        ),
        (status_with(terminated("")), False, 'container "a" in pod "p" is terminated'),
        (PodStatus(phase=PodPhase.PENDING), False, 'container "a" in pod "p" is not available'),
    ],
    ids=["no-previous", "creating", "pull-error", "pull-backoff", "no-id", "no-status"],
)
def test_no_instance_to_read_is_refused_in_the_kubelets_words(
    status: PodStatus, previous: bool, message: str
) -> None:
    with pytest.raises(StatusError) as caught:
        container_to_read(status, "p", "a", previous)
    assert (caught.value.code, caught.value.message) == (400, message)


# --- the stream cap ---


def test_streams_past_the_cap_are_refused_until_one_closes() -> None:
    executor = DockerExecutor("unix:///nonexistent.sock")
    reader = LogReader(executor, max_streams=2)
    try:
        first = reader.open("a", LogOptions())
        reader.open("b", LogOptions()).close()
        second = reader.open("c", LogOptions())
        with pytest.raises(TooManyLogStreamsError):
            reader.open("d", LogOptions())
        first.close()
        first.close()  # twice frees one slot, not two
        reader.open("e", LogOptions())
        with pytest.raises(TooManyLogStreamsError):
            reader.open("f", LogOptions())
        second.close()
        assert reader.active == 1
    finally:
        reader.shutdown()
        executor.shutdown()


# --- the endpoint, with a fake log source ---


class FakeLog:
    def __init__(self, source: FakeSource, pieces: list[bytes], *, block: bool) -> None:
        self.source = source
        self.pieces = list(pieces)
        self.block = block
        self.closed = False

    async def start(self) -> None:
        if self.source.fail is not None:
            raise self.source.fail

    async def read(self) -> bytes:
        if self.pieces:
            return self.pieces.pop(0)
        if self.block:
            await asyncio.Event().wait()
        return b""

    def close(self) -> None:
        self.closed = True


class FakeSource:
    def __init__(self) -> None:
        self.opened: list[tuple[str, LogOptions, FakeLog]] = []
        self.pieces = [b"one\n", b"two\n"]
        self.block = False
        self.full = False
        self.fail: Exception | None = None

    def open_log(self, container_id: str, options: LogOptions) -> FakeLog:
        if self.full:
            raise TooManyLogStreamsError(1)
        stream = FakeLog(self, self.pieces, block=self.block)
        self.opened.append((container_id, options, stream))
        return stream


class Engine:
    async def ping(self, timeout: float = 2.0) -> bool:
        return True

    def is_stale(self) -> bool:
        return False


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def pods() -> tuple[Pod, Pod]:
    return make_pod(("a",), name="one"), make_pod(("a", "b"), name="two")


@pytest.fixture
async def client(
    source: FakeSource, pods: tuple[Pod, Pod]
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    status = StatusManager()
    for pod in pods:
        status.track(pod)
        running = tuple(
            ContainerStatus(
                name=c.name, state=StateRunning(1.0), last_state=None, ready=True,
                restart_count=0, image="i", container_id=f"docker://{pod.name}-{c.name}",
            )
            for c in pod.spec.containers
        )  # fmt: skip
        status.set(pod.uid, PodStatus(phase=PodPhase.RUNNING, container_statuses=running))
    deps = ServerDeps(status=status, engine=Engine(), source_errors=list, logs=source)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(make_app(deps), host="127.0.0.1")
    )
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def log_path(pod: Pod, query: str = "") -> str:
    return f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/log" + (
        f"?{query}" if query else ""
    )


async def test_a_log_is_streamed_as_text(
    client: TestClient[web.Request, web.Application],
    source: FakeSource,
    pods: tuple[Pod, Pod],
) -> None:
    one, two = pods
    resp = await client.get(log_path(one, "tailLines=2&sinceSeconds=60"))
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain"
    assert await resp.read() == b"one\ntwo\n"
    cid, options, stream = source.opened[0]
    assert cid == f"{one.name}-a"
    assert options.tail == 2
    assert options.since is not None
    assert abs(options.since - (time.time() - 60)) < 5
    assert stream.closed
    resp = await client.get(f"/containerLogs/{two.namespace}/{two.name}/b?tail=1")
    assert (resp.status, await resp.read()) == (200, b"one\ntwo\n")
    assert source.opened[1][:2] == (f"{two.name}-b", LogOptions(tail=1))


async def status_of(resp: Any) -> tuple[int, str, str]:
    body = json.loads(await resp.read())
    return resp.status, body["reason"], body["message"]


async def test_refusals_are_statuses(
    client: TestClient[web.Request, web.Application],
    source: FakeSource,
    pods: tuple[Pod, Pod],
) -> None:
    one, two = pods
    resp = await client.get("/api/v1/namespaces/default/pods/nope/log")
    assert await status_of(resp) == (404, "NotFound", 'pods "nope" not found')
    resp = await client.get(log_path(two))
    assert await status_of(resp) == (
        400,
        "BadRequest",
        f"a container name must be specified for pod {two.name}, choose one of: [a b]",
    )
    resp = await client.get(log_path(one, "container=x"))
    assert await status_of(resp) == (
        400,
        "BadRequest",
        f"container x is not valid for pod {one.name}",
    )
    resp = await client.get(log_path(one, "previous=true"))
    assert await status_of(resp) == (
        400,
        "BadRequest",
        f'previous terminated container "a" in pod "{one.name}" not found',
    )
    resp = await client.get(log_path(one, "tailLines=-2"))
    assert (await status_of(resp))[:2] == (422, "Invalid")
    resp = await client.get(f"/containerLogs/default/{one.name}/x")
    assert await status_of(resp) == (
        404,
        "NotFound",
        f'container "x" not found in pod "{one.name}"',
    )
    resp = await client.get("/containerLogs/default/nope/a")
    assert await status_of(resp) == (404, "NotFound", 'pod "nope" does not exist')
    assert source.opened == []
    source.full = True
    resp = await client.get(log_path(one))
    assert (await status_of(resp))[:2] == (429, "TooManyRequests")
    assert resp.headers["Retry-After"] == "1"


async def test_an_instance_gone_from_the_engine_is_a_bad_request(
    client: TestClient[web.Request, web.Application],
    source: FakeSource,
    pods: tuple[Pod, Pod],
) -> None:
    from minikubelet.errors import NotFoundError, RuntimeUnavailableError

    source.fail = NotFoundError("No such container")
    resp = await client.get(log_path(pods[0]))
    assert (await status_of(resp))[0] == 400
    assert source.opened[-1][2].closed
    source.fail = RuntimeUnavailableError("gone")
    resp = await client.get(log_path(pods[0]))
    assert (await status_of(resp))[:2] == (503, "ServiceUnavailable")
    assert source.opened[-1][2].closed


async def test_a_follower_that_leaves_closes_its_stream(
    client: TestClient[web.Request, web.Application],
    source: FakeSource,
    pods: tuple[Pod, Pod],
) -> None:
    source.block = True
    resp = await client.get(log_path(pods[0], "follow=true"))
    assert resp.status == 200
    assert await resp.content.readexactly(8) == b"one\ntwo\n"
    stream = source.opened[0][2]
    assert not stream.closed
    resp.close()  # the client goes away mid-follow
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not stream.closed:
        assert loop.time() < deadline, "the stream was not closed after the client left"
        await asyncio.sleep(0.01)
