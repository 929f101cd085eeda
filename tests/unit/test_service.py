"""The service face of the agent, without Docker: sd_notify datagrams on sockets the
tests bind, the watchdog's gating, settings keys and flags, log formats, SIGHUP's
apply step, and the manifest directory's strict modes."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minikubelet import cli
from minikubelet.config.strict import directory_insecurity, file_insecurity, trusted_uids
from minikubelet.errors import ConfigError
from minikubelet.logconfig import AgentLogging, make_formatter, syslog_priority
from minikubelet.settings import Settings, build_settings, changed_fields, config_keys
from minikubelet.systemd import Notifier, Watchdog, format_message, notify_address, watchdog_period

# --- sd_notify ---


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify")
    sock.bind(address)
    sock.settimeout(5)
    yield sock, address
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"minikubelet-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_notify_sends_one_datagram_of_lines(kind: str, request: pytest.FixtureRequest) -> None:
    sock, env_value = request.getfixturevalue(kind)
    notifier = Notifier.from_env({"NOTIFY_SOCKET": env_value})
    assert notifier.enabled
    assert notifier.send(READY=1, STATUS="3 pods, 0 manifest errors")
    assert sock.recv(4096) == b"READY=1\nSTATUS=3 pods, 0 manifest errors"
    assert notifier.send(WATCHDOG=1)
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("relative/path", None),
        ("@", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@abstract", b"\0abstract"),
    ],
    ids=["unset", "relative", "bare-at", "path", "abstract"],
)
def test_notify_address(value: str, expected: str | bytes | None) -> None:
    assert notify_address({"NOTIFY_SOCKET": value} if value else {}) == expected


def test_notify_without_a_socket_or_listener_never_fails(tmp_path: Path) -> None:
    assert not Notifier.from_env({}).send(READY=1)
    # A path nobody listens on: the send fails quietly, and again.
    gone = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled
    assert not gone.send(READY=1)
    assert not gone.send(STOPPING=1)
    gone.close()


def test_a_newline_in_a_value_cannot_forge_a_field() -> None:
    assert format_message({"STATUS": "x\nREADY=1"}) == b"STATUS=x READY=1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "3000000"}, 3.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "4242"}, 3.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),
    ],
    ids=["unset", "zero", "junk", "set", "our-pid", "other-pid"],
)
def test_watchdog_period(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_period(env, 4242) == expected


class Liveness:
    def __init__(self) -> None:
        self.reason: str | None = None
        self.hang = False

    async def __call__(self) -> str | None:
        if self.hang:
            await asyncio.Event().wait()
        return self.reason


async def test_watchdog_pets_only_while_alive(
    path_socket: tuple[socket.socket, str],
) -> None:
    sock, address = path_socket
    sock.setblocking(False)
    alive = Liveness()
    notifier = Notifier(address)
    watchdog = Watchdog(notifier, period=0.2, alive=alive)

    def received() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(sock.recv(4096))
            except BlockingIOError:
                return out

    assert await watchdog.pet_once()
    assert received() == [b"WATCHDOG=1"]
    alive.reason = "syncloop: stuck"
    assert not await watchdog.pet_once()
    assert received() == []
    # A check that never answers is a wedged agent: no pet, and no wait past the interval.
    alive.reason = None
    alive.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert not await watchdog.pet_once()
    assert loop.time() - started < 0.5
    assert received() == []
    alive.hang = False
    assert await watchdog.pet_once()
    assert received() == [b"WATCHDOG=1"]
    notifier.close()


async def test_watchdog_run_pets_at_half_the_period(
    path_socket: tuple[socket.socket, str],
) -> None:
    sock, address = path_socket
    sock.setblocking(False)
    notifier = Notifier(address)
    watchdog = Watchdog(notifier, period=0.2, alive=Liveness())
    task = asyncio.create_task(watchdog.run())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):
            assert await asyncio.wait_for(loop.sock_recv(sock, 4096), 2) == b"WATCHDOG=1"
        # Four pets at 0.1 s intervals: the first at once, then three intervals.
        assert 0.25 < loop.time() - started < 1.0
    finally:
        task.cancel()
        notifier.close()


# --- settings: every `run` flag has a config key ---


def _run_parser() -> argparse.ArgumentParser:
    parser = cli._parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            run: argparse.ArgumentParser = action.choices["run"]
            return run
    raise AssertionError("no run subcommand")


def test_every_run_flag_has_a_config_key() -> None:
    keys = config_keys()
    fields_with_keys = set(keys.values())
    flags = [
        a for a in _run_parser()._actions if a.dest not in ("help", "config") and a.option_strings
    ]
    assert flags
    missing = [a.option_strings[0] for a in flags if a.dest not in fields_with_keys]
    assert not missing, f"flags with no config key (add them to settings._KEYS): {missing}"
    assert set(keys.values()) <= set(Settings.__dataclass_fields__)


def test_an_unknown_config_key_is_an_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("logLevel: DEBUG\nlogFromat: json\n")
    with pytest.raises(ConfigError, match="logFromat: unknown setting"):
        build_settings(config_file=config, overrides={"node_name": "n"})


@pytest.mark.parametrize(
    ("text", "flags", "expected"),
    [
        ("", {}, ("text", False)),
        ("logFormat: json\nallowInsecureManifestDir: true\n", {}, ("json", True)),
        ("logFormat: json\n", {"log_format": "text"}, ("text", False)),
    ],
    ids=["defaults", "file", "flag-wins"],
)
def test_log_format_and_insecure_dir_settings(
    tmp_path: Path, text: str, flags: dict[str, str], expected: tuple[str, bool]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    settings = build_settings(config_file=config, overrides={"node_name": "n", **flags})
    assert (settings.log_format, settings.allow_insecure_manifest_dir) == expected


def test_a_bad_log_format_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("logFormat: xml\n")
    with pytest.raises(ConfigError, match="logFormat"):
        build_settings(config_file=config, overrides={"node_name": "n"})


def test_changed_fields() -> None:
    old = Settings(node_name="n")
    new = Settings(node_name="n", log_level="DEBUG", listen="127.0.0.1:1")
    assert changed_fields(old, new) == ["listen", "log_level"]


# --- log format ---


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("minikubelet.x", level, __file__, 1, message, None, None)


def test_json_log_lines_are_objects() -> None:
    line = make_formatter("json", journal=False).format(_record(logging.WARNING, 'a "b"\nc'))
    data = json.loads(line)
    assert data["level"] == "WARNING"
    assert data["logger"] == "minikubelet.x"
    assert data["message"] == 'a "b"\nc'
    assert "time" in data
    assert "\n" not in line


def test_journal_lines_carry_the_syslog_priority() -> None:
    text = make_formatter("text", journal=True).format(_record(logging.ERROR, "one\ntwo"))
    assert text == "<3>ERROR minikubelet.x: one\n<3>two"
    line = make_formatter("json", journal=True).format(_record(logging.INFO, "hi"))
    assert line.startswith("<6>{")
    assert json.loads(line[3:])["message"] == "hi"
    assert syslog_priority(logging.DEBUG) == 7
    assert syslog_priority(logging.CRITICAL) == 2


def test_agent_logging_switches_format_and_level() -> None:
    stream = io.StringIO()
    logs = AgentLogging(stream)
    root = logging.getLogger()
    level = root.level
    try:
        logs.configure(level="WARNING", log_format="text")
        logging.getLogger("minikubelet.t").info("hidden")
        logging.getLogger("minikubelet.t").warning("shown")
        logs.configure(level="INFO", log_format="json")
        logging.getLogger("minikubelet.t").info("as json")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2
        assert lines[0].endswith("WARNING minikubelet.t: shown")
        assert json.loads(lines[1])["message"] == "as json"
        assert root.handlers.count(logs.handler) == 1
    finally:
        root.removeHandler(logs.handler)
        root.setLevel(level)


# --- strict modes ---


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (0o644, ""),
        (0o600, ""),
        (0o664, "group-writable (mode 0664)"),
        (0o646, "writable by others (mode 0646)"),
    ],
    ids=["0644", "0600", "group", "other"],
)
def test_file_insecurity(tmp_path: Path, mode: int, problem: str) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("")
    path.chmod(mode)
    reason = file_insecurity(os.stat(path), trusted_uids())
    if problem:
        assert problem in reason
        assert "allowInsecureManifestDir" in reason
    else:
        assert reason == ""


def test_a_file_owned_by_another_user_is_insecure(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("")
    st = os.stat(path)
    assert "owned by uid" in file_insecurity(st, frozenset({st.st_uid + 1}))


def test_directory_insecurity(tmp_path: Path) -> None:
    trusted = trusted_uids()
    parent = tmp_path / "etc"
    manifests = parent / "manifests"
    manifests.mkdir(parents=True)
    os.chmod(parent, 0o755)
    os.chmod(manifests, 0o755)
    assert directory_insecurity(manifests, trusted) == ""
    assert directory_insecurity(tmp_path / "absent", trusted) == ""
    os.chmod(manifests, 0o775)
    assert f"manifest directory {manifests} is group-writable" in directory_insecurity(
        manifests, trusted
    )
    # A sticky manifest directory is still refused: others could add files to it.
    os.chmod(manifests, 0o1777)
    assert "writable by others" in directory_insecurity(manifests, trusted)
    os.chmod(manifests, 0o755)
    os.chmod(parent, 0o777)
    assert f"{parent}, a parent of manifest directory" in directory_insecurity(manifests, trusted)
    # A sticky parent (as /tmp) cannot have the directory swapped under it.
    os.chmod(parent, 0o1777)
    assert directory_insecurity(manifests, trusted) == ""
    # Through a symlink placed in a writable directory: the holder of the link counts.
    os.chmod(parent, 0o755)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    link = shared / "link"
    link.symlink_to(manifests)
    assert f"{shared}, a parent" in directory_insecurity(link, trusted)
    assert stat.S_IMODE(os.stat(manifests).st_mode) == 0o755


def test_repeated_events_are_logged_at_counts_1_2_4_8(caplog: pytest.LogCaptureFixture) -> None:
    from minikubelet.events import EventRecorder, EventType, ObjectRef

    recorder = EventRecorder(host="n", clock=lambda: 0.0)
    pod = ObjectRef(kind="Pod", name="web", namespace="default", uid="u")
    with caplog.at_level(logging.DEBUG, logger="minikubelet.events"):
        for _ in range(10):
            recorder.record(pod, EventType.WARNING, "Unhealthy", "Readiness probe failed")
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(loud) == 4
    assert loud[-1].endswith("Readiness probe failed (x8)")
    assert len(caplog.records) == 10


def test_housekeeping_overdue_fails_the_syncloop_check() -> None:
    from minikubelet.agent import HOUSEKEEPING_PERIOD, housekeeping_stalled

    assert housekeeping_stalled(100.0, 100.0 + HOUSEKEEPING_PERIOD + 1) is None
    reason = housekeeping_stalled(100.0, 100.0 + 10 * HOUSEKEEPING_PERIOD)
    assert reason is not None
    assert "housekeeping" in reason


def test_journal_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    from minikubelet.logconfig import stream_is_journal

    with (tmp_path / "stream").open("w") as stream:
        st = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "junk"})
        assert not stream_is_journal(stream, {})
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})
