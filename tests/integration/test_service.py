"""The agent as a systemd service: sd_notify (READY, STATUS, the watchdog, STOPPING)
on a socket the test binds, SIGHUP reloading settings (observed as Node events), and
the manifest directory's strict modes."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Agent, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker

WATCHDOG_USEC = 1_000_000


class NotifyListener:
    """A datagram socket bound where the agent's $NOTIFY_SOCKET points, and what came."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.name = f"minikubelet-test-{uuid.uuid4().hex}"
        # Abstract: no path length limit, nothing to clean up.
        self.sock.bind("\0" + self.name)
        self.sock.setblocking(False)
        # (arrival time, {field: value})
        self.messages: list[tuple[float, dict[str, str]]] = []

    @property
    def env_value(self) -> str:
        return "@" + self.name

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().split("\n"))
            self.messages.append((time.monotonic(), fields))

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], *, timeout: float, what: str
    ) -> dict[str, str]:
        def found() -> dict[str, str] | None:
            self._drain()
            return next((m for _, m in self.messages if predicate(m)), None)

        try:
            return wait_until(found, timeout=timeout, what=what, interval=0.01)
        except AssertionError as e:
            raise AssertionError(f"{e}\nreceived: {[m for _, m in self.messages]}") from None

    def wait_count(self, key: str, count: int, *, timeout: float) -> list[float]:
        def enough() -> list[float] | None:
            self._drain()
            times = self.times(key)
            return times if len(times) >= count else None

        return wait_until(enough, timeout=timeout, what=f"{count} messages with {key}=")

    def times(self, key: str) -> list[float]:
        return [t for t, m in self.messages if key in m]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    listening = NotifyListener()
    yield listening
    listening.close()


def test_ready_status_watchdog_and_stopping(
    make_agent: Callable[..., Agent], listener: NotifyListener
) -> None:
    agent = make_agent(
        start=False,
        env={"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
    )
    agent.write("web.yaml", pod_manifest("web", [sh("c", "sleep 3600")]))
    agent.start(wait=False)
    listener.wait_for(lambda m: m.get("READY") == "1", timeout=30, what="READY=1")
    # Ready means the manifests are read and the API serves: it answers at once.
    assert "[+]manifests ok" in agent.healthz()
    ready_at = listener.times("READY")[0]
    assert any("STATUS" in m for t, m in listener.messages if t < ready_at), "no starting STATUS"
    listener.wait_for(
        lambda m: m.get("STATUS", "").startswith("1 pod, 0 manifest errors"),
        timeout=10,
        what="STATUS= with the pod count",
    )
    pets = listener.wait_count("WATCHDOG", 4, timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(pets)]
    # Petted at half the interval: never a gap systemd would count as a miss.
    assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
    assert all(m.get("WATCHDOG") == "1" for _, m in listener.messages if "WATCHDOG" in m)

    assert agent.stop(signal.SIGTERM) == 0
    listener.wait_for(lambda m: m.get("STOPPING") == "1", timeout=5, what="STOPPING=1")


def _config(agent: Agent, text: str) -> Path:
    path = agent.manifests.parent / "config.yaml"
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    temp.rename(path)
    return path


def test_sighup_reloads_what_it_can_and_says_what_needs_a_restart(
    make_agent: Callable[..., Agent],
) -> None:
    agent = make_agent(start=False, log_level=None)
    config = _config(agent, "logLevel: INFO\nfileCheckFrequency: 20\n")
    agent.extra_args = ("--config", str(config))
    agent.write("web.yaml", pod_manifest("web", [sh("c", "sleep 3600")]))
    agent.start()
    agent.wait_running("web")
    assert agent.proc is not None

    _config(agent, "logLevel: DEBUG\nfileCheckFrequency: 2\nmaxManifestBytes: 5000000\n")
    agent.proc.send_signal(signal.SIGHUP)
    event = agent.wait_event(kind="Node", reason="ConfigReloaded")
    assert event["type"] == "Normal"
    assert event["involvedObject"]["name"] == agent.node
    assert event["message"] == (
        "applied fileCheckFrequency=2.0, logLevel=DEBUG; "
        "needs a restart, not applied: maxManifestBytes=5000000"
    )

    # A bad file: reported, the running settings stay, the agent and its pod go on.
    _config(agent, "logLevel: LOUD\n")
    agent.proc.send_signal(signal.SIGHUP)
    failed = agent.wait_event(kind="Node", reason="ConfigReloadFailed")
    assert failed["type"] == "Warning"
    assert "logLevel" in failed["message"]
    _config(agent, "logLevel: DEBUG\nnotASetting: 1\n")
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_event(kind="Node", reason="ConfigReloadFailed", message="notASetting")
    assert agent.proc.poll() is None
    agent.wait_ready()
    agent.wait_running("web")

    # Back to what runs, but for the restart-only key: only that is reported.
    _config(agent, "logLevel: DEBUG\nfileCheckFrequency: 2\n")
    agent.proc.send_signal(signal.SIGHUP)
    agent.wait_event(kind="Node", reason="ConfigReloaded", message="no change to apply")


def _write_with_mode(directory: Path, name: str, text: str, mode: int) -> Path:
    """Renamed into place from a dot-name, so the agent never sees another mode."""
    temp = directory / f".{name}"
    temp.write_text(text)
    temp.chmod(mode)
    path = directory / name
    temp.rename(path)
    return path


def test_a_group_writable_manifest_is_refused_and_the_others_run(agent: Agent) -> None:
    agent.write("good.yaml", pod_manifest("good", [sh("c", "sleep 3600")]))
    agent.wait_running("good")
    bad = _write_with_mode(
        agent.manifests,
        "open.yaml",
        yaml.safe_dump(pod_manifest("open", [sh("c", "sleep 3600")])),
        0o664,
    )

    def refused() -> dict[str, str] | None:
        return next((e for e in agent.pod_list()["errors"] if e["file"] == str(bad)), None)

    error = wait_until(refused, timeout=10, what=f"{bad} in /pods errors")
    assert "group-writable" in error["message"]
    event = agent.wait_event(kind="Node", reason="FailedValidation", message=str(bad))
    assert "group-writable" in event["message"]
    agent.sync_manifests()
    assert agent.pod("open") is None
    assert agent.containers(**{"io.kubernetes.pod.name": f"open-{agent.node}"}) == []
    agent.wait_running("good")
    # Fixed, it is taken.
    bad.chmod(0o644)
    agent.wait_running("open")


def test_a_group_writable_directory_is_refused_unless_allowed(
    make_agent: Callable[..., Agent],
) -> None:
    refused = make_agent(start=False)
    refused.manifests.chmod(0o775)
    refused.start(wait=False)
    assert refused.proc is not None
    assert refused.proc.wait(30) == 2
    assert f"manifest directory {refused.manifests} is group-writable" in refused.log()

    allowed = make_agent("--allow-insecure-manifest-dir", start=False)
    allowed.manifests.chmod(0o775)
    _write_with_mode(
        allowed.manifests,
        "web.yaml",
        yaml.safe_dump(pod_manifest("web", [sh("c", "sleep 3600")])),
        0o666,
    )
    allowed.start()
    allowed.wait_running("web")
    assert os.stat(allowed.manifests).st_mode & 0o020


def test_json_logs_are_one_object_per_line(make_agent: Callable[..., Agent]) -> None:
    import json

    agent = make_agent("--log-format", "json", log_level="INFO")
    agent.write("web.yaml", pod_manifest("web", [sh("c", "sleep 3600")]))
    agent.wait_running("web")
    assert agent.stop(signal.SIGTERM) == 0
    records = [json.loads(line) for line in agent.log().splitlines()]
    assert records
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["message"] == "minikubelet stopped" for r in records)
