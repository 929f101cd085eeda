"""Killing an exec's process only when it is still that process (pidfd, start time, cgroup).

Real processes of this test, no Docker: ``kill_if_same`` is given what the
runtime would get from exec inspect (a pid, a container id) and an owner's
confirmation, and must leave alone any process that is not the one meant.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minikubelet.runtime.procs import boot_ticks, kill_if_same, start_ticks


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().splitlines()[-1].split(":", 2)[2]


def after(pid: int) -> int:
    """A moment in boot ticks strictly after ``pid`` started (waits out one tick)."""
    started = start_ticks(pid)
    deadline = time.monotonic() + 5
    while boot_ticks() <= started:
        assert time.monotonic() < deadline, "the boot clock did not move"
        time.sleep(0.001)
    return boot_ticks()


def alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def test_start_ticks_reads_past_a_command_name_with_parentheses(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    fields = ["S"] + [str(i) for i in range(4, 53)]
    (tmp_path / "7" / "stat").write_text("7 (evil) (name) " + " ".join(fields) + "\n")
    assert start_ticks(7, proc=tmp_path) == 22


def test_a_process_that_started_before_the_exec_is_not_killed(
    sleeper: subprocess.Popen[bytes],
) -> None:
    """The pid's current owner is older than the exec: the exec's process is gone."""
    exec_started = after(sleeper.pid)
    killed = kill_if_same(
        sleeper.pid,
        not_before=exec_started,
        cgroup_marker=cgroup_of(sleeper.pid),
        confirm=lambda: True,
    )
    assert killed is False
    assert alive(sleeper)


def test_a_process_outside_the_containers_cgroup_is_not_killed(
    sleeper: subprocess.Popen[bytes],
) -> None:
    killed = kill_if_same(
        sleeper.pid,
        not_before=0,
        cgroup_marker="0123456789abcdef" * 4,  # a container id it is not in
        confirm=lambda: True,
    )
    assert killed is False
    assert alive(sleeper)


def test_a_process_the_owner_no_longer_vouches_for_is_not_killed(
    sleeper: subprocess.Popen[bytes],
) -> None:
    asked: list[bool] = []

    def confirm() -> bool:
        asked.append(True)
        return False  # exec inspect: not running, or another pid

    killed = kill_if_same(
        sleeper.pid, not_before=0, cgroup_marker=cgroup_of(sleeper.pid), confirm=confirm
    )
    assert killed is False
    assert asked == [True]
    assert alive(sleeper)


def test_the_process_meant_is_killed(sleeper: subprocess.Popen[bytes]) -> None:
    exec_started = start_ticks(sleeper.pid)  # the same tick counts as not before
    killed = kill_if_same(
        sleeper.pid,
        not_before=exec_started,
        cgroup_marker=cgroup_of(sleeper.pid),
        confirm=lambda: True,
    )
    assert killed is True
    assert sleeper.wait(5) == -9


def test_a_pid_that_exited_is_not_signalled() -> None:
    proc = subprocess.Popen(["true"])
    pid = proc.pid
    proc.wait(5)  # reaped: the pid may now be anyone's
    assert kill_if_same(pid, not_before=0, cgroup_marker="", confirm=lambda: True) is False


def test_a_zombie_is_not_signalled() -> None:
    """Exited but not reaped: it still holds its pid, but is no process to kill."""
    proc = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.005)
        assert (
            kill_if_same(
                proc.pid,
                not_before=0,
                cgroup_marker=cgroup_of(proc.pid),
                confirm=lambda: True,
            )
            is False
        )
    finally:
        proc.wait(5)
