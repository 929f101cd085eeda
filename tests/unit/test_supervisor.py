"""The supervisor: a part that dies stops the agent, loudly; a requested stop is not a failure."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from minikubelet.errors import ConfigError
from minikubelet.health import Health
from minikubelet.supervisor import Supervisor
from minikubelet.util.host import raise_open_file_limit
from minikubelet.util.statedir import prepare_state_dir, state_dir_in_use


async def _forever() -> None:
    await asyncio.Event().wait()


async def _dies() -> None:
    await asyncio.sleep(0)
    raise KeyError("boom")


async def _returns() -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("part", "expected"),
    [(_dies, "part p died: KeyError: 'boom'"), (_returns, "part p ended unexpectedly")],
    ids=["raises", "returns"],
)
async def test_a_part_that_ends_stops_the_agent(part: object, expected: str) -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    supervisor.spawn("healthy", _forever())
    supervisor.spawn("p", part())  # type: ignore[operator]
    await asyncio.wait_for(stop.wait(), 2)
    assert supervisor.failure == expected
    await supervisor.stop()


async def test_requested_stop_is_not_a_failure() -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    supervisor.spawn("a", _forever())
    supervisor.spawn("b", _forever())
    await supervisor.stop()
    assert supervisor.failure is None
    assert not stop.is_set()


async def test_exception_in_a_callback_is_fatal() -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    supervisor.install_loop_handler(loop)
    try:

        def broken() -> None:
            raise ValueError("bad state")

        loop.call_soon(broken)
        await asyncio.wait_for(stop.wait(), 2)
        assert supervisor.failure is not None
        assert "ValueError: bad state" in supervisor.failure
    finally:
        loop.set_exception_handler(previous)


async def test_network_noise_in_the_loop_is_not_fatal() -> None:
    stop = asyncio.Event()
    supervisor = Supervisor(stop)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    supervisor.install_loop_handler(loop)
    try:
        loop.call_exception_handler(
            {"message": "Fatal read error on socket", "exception": ConnectionResetError()}
        )
        assert supervisor.failure is None
        assert not stop.is_set()
    finally:
        loop.set_exception_handler(previous)


async def test_health_runs_every_check_and_contains_a_raising_one() -> None:
    health = Health()

    async def ok() -> str | None:
        return None

    async def degraded() -> str | None:
        return "engine away"

    async def broken() -> str | None:
        raise RuntimeError("secret detail")

    health.add("ok", ok)
    health.add("degraded", degraded)
    health.add("broken", broken)
    results = await health.run()
    assert [(r.name, r.error) for r in results] == [
        ("ok", None),
        ("degraded", "engine away"),
        ("broken", "check raised RuntimeError"),
    ]
    assert [r.name for r in await health.run(["degraded"])] == ["degraded"]
    with pytest.raises(ValueError, match="twice"):
        health.add("ok", ok)


def test_state_dir_mode_and_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    lock = prepare_state_dir(state)
    try:
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o750
        assert state_dir_in_use(state)
        with pytest.raises(ConfigError, match=f"{state} is in use by another minikubelet"):
            prepare_state_dir(state)
    finally:
        lock.release()
    assert not state_dir_in_use(state)
    assert not state_dir_in_use(tmp_path / "never-made")
    prepare_state_dir(state).release()


def test_state_dir_must_not_be_a_symlink_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises((ConfigError, FileExistsError)):
        prepare_state_dir(target)


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lowered = min(256, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        old, new = raise_open_file_limit()
        assert old == lowered
        assert new == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert new == min(hard, 1 << 20)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
