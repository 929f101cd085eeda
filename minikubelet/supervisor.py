"""Keeps the agent whole or not at all.

The agent's long-running parts (the manifest source, the Docker event
stream, the pod workers' supervisor, the server) run as named tasks here. A
part that ends while the agent is not stopping, by an exception or by simply
returning, is a part that died: it is logged with its traceback, recorded as
the failure, and the agent's stop is set, so ``run()`` unwinds and the
process exits non-zero for its service manager to restart it. An agent half
alive (serving ``/healthz`` ok while no manifest change is ever seen) is
worse than one that restarts.

The event loop's exception handler is the same net for callbacks: an
exception escaping a callback or a task nobody awaited is a bug that left
some part in an unknown state, so it is fatal too. Network noise that the
loop also reports there (a peer resetting a connection) is only logged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# What the loop reports about transports and peers; not a broken part.
_BENIGN = (ConnectionError, TimeoutError, ssl.SSLError, OSError)


class AgentFailure(Exception):
    """A part of the agent died; the process must exit non-zero."""


class Supervisor:
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self.failure: str | None = None

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if name in self._tasks:
            raise ValueError(f"part {name!r} is already running")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        return task

    def names(self) -> list[str]:
        return list(self._tasks)

    def fail(self, reason: str, error: BaseException | None = None) -> None:
        """Record a fatal failure and stop the agent (first failure wins)."""
        if self._stopping:
            return
        log.critical("%s; stopping the agent", reason, exc_info=error)
        if self.failure is None:
            self.failure = reason
        self._stop.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        name = task.get_name()
        if task.cancelled():
            self.fail(f"part {name} was cancelled unexpectedly")
            return
        error = task.exception()
        if error is None:
            self.fail(f"part {name} ended unexpectedly")
        else:
            self.fail(f"part {name} died: {type(error).__name__}: {error}", error)

    def install_loop_handler(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        message = str(context.get("message") or "unhandled exception in the event loop")
        if error is None or isinstance(error, _BENIGN):
            loop.default_exception_handler(context)
            return
        self.fail(f"{message}: {type(error).__name__}: {error}", error)

    async def stop(self, timeout: float = 1.0) -> None:
        """Cancel every part (this is a requested stop, not a failure)."""
        self._stopping = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
