"""Commands run in containers for probes and hooks, killed when they outlive their timeout.

Docker has no call to stop an exec. One left running past its timeout would
hold its thread until it ended, so a few hanging probes could starve every
other pod's exec probes; so it is killed, as containerd's ExecSync does,
through ``procs.kill_if_same`` (which never hits a process that reused the
pid). Execs run on a pool of their own: an exec takes ~40 ms of engine time
and may hang, and must never hold up pod creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import docker

from minikubelet.errors import MinikubeletError
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.procs import boot_ticks, kill_if_same

log = logging.getLogger(__name__)

EXEC_POOL_SIZE = 8
# What the kubelet keeps of a probe's or hook's output.
EXEC_OUTPUT_LIMIT = 10 * 1024


def _exec_create(client: docker.APIClient, container_id: str, command: list[str]) -> str:
    return str(client.exec_create(container_id, command, stdout=True, stderr=True)["Id"])


def _exec_run(client: docker.APIClient, exec_id: str, limit: int) -> tuple[int, bytes]:
    """Run a created exec to its end, keeping only the last ``limit`` bytes of output.

    Streamed, so a command printing without end costs bounded memory.
    """
    kept = bytearray()
    for chunk in client.exec_start(exec_id, stream=True):
        kept += chunk
        if len(kept) > 2 * limit:
            del kept[:-limit]
    code = client.exec_inspect(exec_id).get("ExitCode")
    return (code if isinstance(code, int) else -1), bytes(kept[-limit:])


def _kill_exec_process(client: docker.APIClient, exec_id: str, not_before: int) -> bool:
    """SIGKILL an exec's process if it is still that process; True if signalled."""
    info = client.exec_inspect(exec_id)
    pid = info.get("Pid")
    container_id = str(info.get("ContainerID") or "")
    if not info.get("Running") or not isinstance(pid, int) or pid <= 0 or not container_id:
        return False

    def still_running() -> bool:
        again = client.exec_inspect(exec_id)
        return bool(again.get("Running")) and again.get("Pid") == pid

    return kill_if_same(
        pid, not_before=not_before, cgroup_marker=container_id, confirm=still_running
    )


def _resolve(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the late result of a timed-out exec as seen: no one is waiting for it."""
    if not task.cancelled():
        task.exception()


class ExecRunner:
    def __init__(self, executor: DockerExecutor) -> None:
        # Quick calls (create, inspect, kill) stay on the main pool, so a full
        # exec pool cannot delay a kill.
        self._executor = executor
        self._exec_executor = DockerExecutor(executor.base_url, pool_size=EXEC_POOL_SIZE)
        # Exec PIDs are host PIDs only when the engine runs on this machine.
        base_url = executor.base_url or os.environ.get("DOCKER_HOST", "")
        self._local_engine = not base_url or base_url.startswith(("unix://", "http+unix://"))
        self._kills: set[asyncio.Task[None]] = set()

    async def exec_in(
        self, container_id: str, command: Sequence[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        """Run a command in a container; (exit code, combined output, cut to a limit).

        The timeout counts from when the command starts, not from a wait for a
        free exec thread. Past it the command is killed and TimeoutError
        raised. A caller that gives up (cancels) kills the command the same way.
        """
        exec_id = await self._executor.call(_exec_create, container_id, list(command))
        loop = asyncio.get_running_loop()
        # When the command was started, in the clock of /proc/<pid>/stat: a
        # process that started earlier cannot be this exec's.
        began: asyncio.Future[int] = loop.create_future()

        def run(client: docker.APIClient) -> tuple[int, bytes]:
            loop.call_soon_threadsafe(_resolve, began, boot_ticks())
            return _exec_run(client, exec_id, EXEC_OUTPUT_LIMIT)

        task = asyncio.ensure_future(self._exec_executor.call(run))
        try:
            if timeout is not None:
                pending: set[asyncio.Future[Any]] = {began, task}
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    task.add_done_callback(_retrieve)
                    await self._kill(exec_id, began.result())
                    raise TimeoutError
            return await task
        except asyncio.CancelledError:
            # A command not yet started never will be; one running is killed.
            task.cancel()
            task.add_done_callback(_retrieve)
            if began.done():
                kill = asyncio.ensure_future(self._kill(exec_id, began.result()))
                self._kills.add(kill)
                kill.add_done_callback(self._kills.discard)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(kill)
            raise

    async def _kill(self, exec_id: str, not_before: int) -> None:
        if not self._local_engine:
            return  # the process is on another host: it runs on, holding one thread
        try:
            killed = await self._executor.call(_kill_exec_process, exec_id, not_before)
        except MinikubeletError as e:
            log.debug("exec %s: cannot kill: %s", exec_id[:12], e)
            return
        if not killed:
            # The usual end of a probe that was merely slow (its Unhealthy event says so).
            log.debug(
                "exec %s outlived its timeout but its process is gone or not its own", exec_id[:12]
            )

    def close(self) -> None:
        for task in list(self._kills):
            task.cancel()
        self._exec_executor.shutdown()
