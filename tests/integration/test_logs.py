"""Container logs through the real agent, from real containers' Docker logs.

One agent serves the whole module: each test runs pods of its own names, so
they do not interfere. Logs are read as kubectl reads them, over HTTP from
``/api/v1/namespaces/{ns}/pods/{name}/log``; streams are read with
deadlines, never with sleeps.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import docker
import psutil
import pytest

from tests.integration.conftest import Agent, Kubectl, pod_manifest, sh, status_of, wait_until

pytestmark = pytest.mark.docker

# runtime/logs.py MAX_STREAMS: the most log streams the agent serves at once.
STREAM_CAP = 128


@pytest.fixture(scope="module")
def agent(
    tmp_path_factory: pytest.TempPathFactory,
    docker_api: docker.APIClient,
    busybox_image: str,
    pause_image: str,
) -> Iterator[Agent]:
    shared = Agent(tmp_path_factory.mktemp("logs-agent"), docker_api, infra_image=pause_image)
    try:
        shared.start()
        yield shared
    finally:
        try:
            shared.stop(signal.SIGKILL)
        finally:
            shared.cleanup()


@pytest.fixture(scope="module")
def kubectl(kubectl_bin: str, agent: Agent, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubectl_bin, agent, tmp_path_factory.mktemp("kubectl-home"))


def attempt(kubectl: Kubectl, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl run where failing is an outcome to look at, not an error."""
    return subprocess.run(
        kubectl.args(*args),
        check=False,
        env=kubectl.env,
        capture_output=True,
        text=True,
        timeout=30,
    )


class LogReply:
    """One log request's answer, read as it streams."""

    def __init__(self, agent: Agent, pod: str, query: dict[str, str], timeout: float) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=timeout)
        path = f"/api/v1/namespaces/default/pods/{pod}-{agent.node}/log"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        self.status = self.response.status

    def line(self) -> bytes:
        """The next line (b"" at the end); the connection's timeout bounds the wait."""
        return self.response.readline()

    def body(self) -> bytes:
        return self.response.read()

    def status_object(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body())
        return result

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def log_reply(
    agent: Agent, pod: str, query: dict[str, str], *, timeout: float = 30.0
) -> Iterator[LogReply]:
    reply = LogReply(agent, pod, query, timeout)
    try:
        yield reply
    finally:
        reply.close()


def read_log(agent: Agent, pod: str, **query: str) -> str:
    with log_reply(agent, pod, query) as reply:
        body = reply.body()
        assert reply.status == 200, body
        return body.decode()


def refusal(agent: Agent, pod: str, **query: str) -> tuple[int, str]:
    with log_reply(agent, pod, query) as reply:
        body = reply.status_object()
        return reply.status, body["message"]


def wait_log(agent: Agent, pod: str, text: str, **query: str) -> str:
    def found() -> str | None:
        log = read_log(agent, pod, **query)
        return log if text in log else None

    return wait_until(found, timeout=20, what=f"{text!r} in the log of {pod}")


def agent_rss(agent: Agent) -> int:
    assert agent.proc is not None
    return int(psutil.Process(agent.proc.pid).memory_info().rss)


def test_one_containers_output_and_which_to_choose(agent: Agent, kubectl: Kubectl) -> None:
    agent.write(
        "two.yaml",
        pod_manifest(
            "two",
            [sh("a", "echo from a; sleep 3600"), sh("b", "echo from b; sleep 3600")],
            initContainers=[sh("setup", "echo from setup")],
        ),
    )
    agent.wait_running("two")
    assert wait_log(agent, "two", "from a", container="a") == "from a\n"
    assert wait_log(agent, "two", "from b", container="b") == "from b\n"
    assert read_log(agent, "two", container="setup") == "from setup\n"
    name = f"two-{agent.node}"
    assert kubectl.run("logs", name, "-c", "b") == "from b\n"
    assert kubectl.run("logs", f"pod/{name}", "--container=setup") == "from setup\n"
    # Without -c, kubectl itself decides: older ones refuse as the API server does,
    # newer ones take the first container and say so.
    done = attempt(kubectl, "logs", name)
    if done.returncode == 0:
        assert done.stdout == "from a\n"
        assert 'Defaulted container "a"' in done.stderr
    else:
        assert f"a container name must be specified for pod {name}" in done.stderr
    done = attempt(kubectl, "logs", name, "-c", "a", "--previous")
    assert done.returncode != 0
    assert f'previous terminated container "a" in pod "{name}" not found' in done.stderr
    assert refusal(agent, "two") == (
        400,
        f"a container name must be specified for pod {name}, choose one of: [a b] "
        "or one of the init containers: [setup]",
    )
    assert refusal(agent, "two", container="c") == (400, f"container c is not valid for pod {name}")
    assert refusal(agent, "two", container="a", previous="true") == (
        400,
        f'previous terminated container "a" in pod "{name}" not found',
    )
    assert refusal(agent, "nope") == (404, f'pods "nope-{agent.node}" not found')


def test_a_container_not_started_yet_has_no_log(agent: Agent) -> None:
    agent.write(
        "unpulled.yaml",
        pod_manifest(
            "unpulled",
            [{"name": "a", "image": "registry.invalid/none:1", "imagePullPolicy": "Never"}],
        ),
    )
    pod = agent.wait_pod(
        "unpulled",
        lambda p: "waiting" in status_of(p, "a")["state"],
        what="container a waiting",
    )
    reason = status_of(pod, "a")["state"]["waiting"]["reason"]
    assert refusal(agent, "unpulled") == (
        400,
        f'container "a" in pod "unpulled-{agent.node}" is waiting to start: {reason}',
    )


class LineReader:
    """A process's stdout read line by line on a thread, each line taken with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), ""))

    def line(self, timeout: float) -> tuple[float, str]:
        """(arrival time, line); "" once stdout has ended."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s") from None


def test_follow_streams_lines_as_written_and_ends_with_the_container(
    agent: Agent, kubectl: Kubectl
) -> None:
    ticks = 10
    script = f"sleep 1; i=1; while [ $i -le {ticks} ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"
    agent.write("ticker.yaml", pod_manifest("ticker", [sh("t", script)], restartPolicy="Never"))
    agent.wait_running("ticker")
    with kubectl.popen("logs", "-f", f"ticker-{agent.node}") as follower:
        try:
            http_arrivals, kubectl_arrivals = _follow_both(agent, follower, ticks)
        finally:
            if follower.poll() is None:
                follower.kill()
    # Lines came as they were written, 0.2 s apart, not all at once at the end.
    for arrivals in (http_arrivals, kubectl_arrivals):
        assert arrivals[-1] - arrivals[0] > 1.0
    agent.wait_pod("ticker", lambda p: p["status"]["phase"] == "Succeeded")
    # Following a container that has ended gives its log and ends at once.
    assert read_log(agent, "ticker", follow="true").count("tick") == ticks
    assert kubectl.run("logs", "-f", f"ticker-{agent.node}").count("tick") == ticks


def _follow_both(
    agent: Agent, follower: subprocess.Popen[str], ticks: int
) -> tuple[list[float], list[float]]:
    """Read ticker's followed log over HTTP and from ``kubectl logs -f``; when each line came."""
    lines = LineReader(follower)
    http_arrivals: list[float] = []
    with log_reply(agent, "ticker", {"follow": "true"}, timeout=10) as reply:
        assert reply.status == 200
        assert reply.response.getheader("Content-Type") == "text/plain"
        for i in range(1, ticks + 1):
            assert reply.line() == f"tick {i}\n".encode()
            http_arrivals.append(time.monotonic())
        # The container exits after its last line; the stream ends with it.
        assert reply.line() == b""
    kubectl_arrivals: list[float] = []
    for i in range(1, ticks + 1):
        at, line = lines.line(timeout=10)
        assert line == f"tick {i}\n"
        kubectl_arrivals.append(at)
    assert lines.line(timeout=10)[1] == ""
    assert follower.wait(timeout=10) == 0
    return http_arrivals, kubectl_arrivals


def test_tail_timestamps_since_and_limit(agent: Agent, kubectl: Kubectl) -> None:
    script = "for i in 1 2 3 4 5; do echo early $i; done; sleep 3; echo late; sleep 3600"
    agent.write("lines.yaml", pod_manifest("lines", [sh("a", script)]))
    agent.wait_running("lines")
    wait_log(agent, "lines", "early 5")
    assert read_log(agent, "lines", tailLines="2") == "early 4\nearly 5\n"
    assert read_log(agent, "lines", tailLines="0") == ""
    assert read_log(agent, "lines", limitBytes="10") == "early 1\nea"
    name = f"lines-{agent.node}"
    assert kubectl.run("logs", name, "--tail", "2") == "early 4\nearly 5\n"
    assert kubectl.run("logs", name, "--limit-bytes", "10") == "early 1\nea"
    stamped = kubectl.run("logs", name, "--timestamps").splitlines()
    assert stamped == read_log(agent, "lines", timestamps="true").splitlines()
    assert len(stamped) == 5
    for i, line in enumerate(stamped, start=1):
        # RFC3339Nano as Go prints it: no trailing zeros in the fraction.
        stamp, text = line.split(" ", 1)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", stamp), stamp
        assert text == f"early {i}"
    wait_log(agent, "lines", "late")
    assert read_log(agent, "lines", sinceSeconds="2") == "late\n"
    assert kubectl.run("logs", name, "--since=2s") == "late\n"
    assert "early 1" in read_log(agent, "lines", sinceSeconds="60")
    assert refusal(agent, "lines", tailLines="-1")[0] == 422
    assert refusal(agent, "lines", sinceSeconds="x")[0] == 400


def test_previous_shows_the_instance_before_the_restart(agent: Agent, kubectl: Kubectl) -> None:
    # Each instance counts itself in an emptyDir; the first exits, the second stays.
    script = (
        "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; "
        'echo "instance $n"; [ $n -ge 2 ] && sleep 3600; exit 1'
    )
    agent.write(
        "restarts.yaml",
        pod_manifest(
            "restarts",
            [sh("a", script, volumeMounts=[{"name": "d", "mountPath": "/d"}])],
            volumes=[{"name": "d", "emptyDir": {}}],
        ),
    )
    agent.wait_pod(
        "restarts",
        lambda p: (
            status_of(p, "a")["restartCount"] >= 1 and "running" in status_of(p, "a")["state"]
        ),
        what="container a restarted and running",
    )
    assert wait_log(agent, "restarts", "instance 2") == "instance 2\n"
    assert read_log(agent, "restarts", previous="true") == "instance 1\n"
    assert kubectl.run("logs", f"restarts-{agent.node}", "--previous") == "instance 1\n"
    assert kubectl.run("logs", f"restarts-{agent.node}") == "instance 2\n"


def test_a_large_log_is_streamed_in_bounded_memory(agent: Agent) -> None:
    lines = 64 << 10
    size = lines * 1025
    # 1 KiB lines: the log is 64 MiB while the read stays a few seconds.
    script = (
        "line=x; for i in 1 2 3 4 5 6 7 8 9 10; do line=$line$line; done; "
        f'yes "$line" | head -n {lines}; echo end'
    )
    agent.write("big.yaml", pod_manifest("big", [sh("a", script)], restartPolicy="Never"))
    agent.wait_pod("big", lambda p: p["status"]["phase"] == "Succeeded", timeout=60)
    before = agent_rss(agent)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, agent_rss(agent))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert read_log(agent, "big", tailLines="1") == "end\n"
        with log_reply(agent, "big", {"follow": "true"}, timeout=60) as reply:
            assert reply.status == 200
            first = reply.response.read(1 << 20)
            # A client that stops reading: the agent must not read ahead for it.
            stalled_at = agent_rss(agent)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                peak = max(peak, agent_rss(agent))
                time.sleep(0.05)
            assert agent_rss(agent) - stalled_at < 16 << 20
            received = len(first)
            last = b""
            while chunk := reply.response.read(1 << 20):
                received += len(chunk)
                last = (last + chunk)[-16:]
        assert received > size
        assert last.endswith(b"end\n")
    finally:
        done.set()
        sampler.join()
    assert peak - before < 32 << 20, f"RSS grew by {(peak - before) >> 20} MiB"


def test_streams_are_capped_and_a_client_that_leaves_frees_its_slot(agent: Agent) -> None:
    agent.write("quiet.yaml", pod_manifest("quiet", [sh("a", "echo hello; sleep 3600")]))
    agent.wait_running("quiet")
    wait_log(agent, "quiet", "hello")

    def hold_all() -> list[LogReply]:
        held: list[LogReply] = []
        try:
            for _ in range(STREAM_CAP):
                # A slot is free again only once its reading thread is: retry briefly.
                reply = wait_until(
                    lambda: _follow_or_close(agent),
                    timeout=10,
                    what="a log stream slot",
                )
                held.append(reply)
                assert reply.line() == b"hello\n"
            with log_reply(agent, "quiet", {"follow": "true"}) as extra:
                assert extra.status == 429
                assert extra.status_object()["reason"] == "TooManyRequests"
        except BaseException:
            for reply in held:
                reply.close()
            raise
        return held

    for round_ in range(2):
        held = hold_all()
        # Pod work is not held up by the followers: a new pod starts meanwhile.
        name = f"meanwhile{round_}"
        agent.write(f"{name}.yaml", pod_manifest(name, [sh("a", "sleep 3600")]))
        agent.wait_running(name)
        for reply in held:
            reply.close()  # the client goes away mid-follow


def _follow_or_close(agent: Agent) -> LogReply | None:
    reply = LogReply(agent, "quiet", {"follow": "true"}, timeout=10)
    if reply.status == 200:
        return reply
    reply.body()
    reply.close()
    return None


def test_the_agent_stops_promptly_with_a_follower_attached(
    make_agent: Callable[..., Agent],
) -> None:
    own = make_agent()
    own.write("chatty.yaml", pod_manifest("chatty", [sh("a", "echo hi; sleep 3600")]))
    own.wait_running("chatty")
    wait_log(own, "chatty", "hi")
    with log_reply(own, "chatty", {"follow": "true"}, timeout=10) as reply:
        assert reply.line() == b"hi\n"
        started = time.monotonic()
        # A follower blocked in a read must not hold the agent's exit.
        assert own.stop(timeout=10) == 0
        assert time.monotonic() - started < 5
        with contextlib.suppress(http.client.HTTPException, OSError):
            assert reply.line() == b""
