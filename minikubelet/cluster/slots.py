"""Coalescing work per key: at most one pass of a key's work runs at a time, and
changes that arrive meanwhile make one more pass, however many they were.

This is what keeps a burst of status changes to one request per pod in flight,
the latest state winning: a change only marks its key; the pass reads the state
as it is when it starts. A pass that fails is repeated after the back-off the
caller's ``wait`` gives; nothing a pass does ever waits on the one who marks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from minikubelet.cluster.api import ApiError
from minikubelet.cluster.retry import Retry

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Slot:
    retry: Retry
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    # When the key became dirty after being settled: the start of a burst.
    since: float | None = None
    sent: bool = False


@dataclass(slots=True)
class SlotStats:
    marks: int = 0
    # Marks that found their key already waiting for a pass: folded into it.
    coalesced: int = 0
    failures: int = 0
    settled: list[float] = field(default_factory=list)


class Slots(Generic[K]):
    """``work(key)`` does one step for a key and says whether it sent anything (then
    it runs again, to see if more is needed); it raises ``ApiError`` to be retried;
    any other exception is a bug, raised by ``crashed``.

    ``wait(delay, error)`` sleeps out a back-off (the caller may cut it short when
    the server is known to answer again); ``on_settled(key, seconds)`` is told, after
    a burst that sent something, how long from its first change to the server
    holding the result.
    """

    def __init__(
        self,
        work: Callable[[K], Awaitable[bool]],
        *,
        wait: Callable[[float, ApiError | None], Awaitable[None]],
        retry: Callable[[], Retry] = Retry,
        clock: Callable[[], float] = time.monotonic,
        on_settled: Callable[[K, float], None] | None = None,
        on_failure: Callable[[K, BaseException], None] | None = None,
    ) -> None:
        self._work = work
        self._wait = wait
        self._retry = retry
        self._clock = clock
        self._on_settled = on_settled
        self._on_failure = on_failure
        self._slots: dict[K, _Slot] = {}
        self.stats = SlotStats()
        self._closed = False
        self._crashed: asyncio.Future[None] | None = None

    def mark(self, key: K) -> None:
        if self._closed:
            return
        self.stats.marks += 1
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(self._retry())
        if slot.dirty:
            self.stats.coalesced += 1
            return
        slot.dirty = True
        if slot.since is None:
            slot.since = self._clock()
        if slot.task is None:
            slot.task = asyncio.get_running_loop().create_task(self._run(key, slot))

    def mark_all(self, keys: Iterable[K]) -> None:
        for key in keys:
            self.mark(key)

    def busy(self, key: K) -> bool:
        slot = self._slots.get(key)
        return slot is not None and (slot.dirty or slot.task is not None)

    def __len__(self) -> int:
        return len(self._slots)

    async def _run(self, key: K, slot: _Slot) -> None:
        try:
            while slot.dirty:
                slot.dirty = False
                try:
                    sent = await self._work(key)
                except asyncio.CancelledError:
                    raise
                except ApiError as e:
                    self.stats.failures += 1
                    if self._on_failure is not None:
                        self._on_failure(key, e)
                    slot.dirty = True
                    await self._wait(slot.retry.next_delay(e), e)
                    continue
                except Exception as e:
                    # Not the server's doing: a bug. Retrying it would leave the reporting
                    # half alive; the owner's ``crashed`` raises it, and the agent stops.
                    self._crash(key, e)
                    return
                slot.retry.reset()
                if sent:
                    slot.sent = True
                    slot.dirty = True
            if slot.sent and slot.since is not None:
                seconds = max(self._clock() - slot.since, 0.0)
                self.stats.settled.append(seconds)
                del self.stats.settled[:-1000]
                if self._on_settled is not None:
                    self._on_settled(key, seconds)
            slot.since = None
            slot.sent = False
        finally:
            slot.task = None
            if not slot.dirty and self._slots.get(key) is slot:
                del self._slots[key]

    def _crash(self, key: K, error: Exception) -> None:
        log.error("mirror pod %s: unexpected error", key, exc_info=error)
        crashed = self._crashed_future()
        if not crashed.done():
            crashed.set_exception(error)

    def _crashed_future(self) -> asyncio.Future[None]:
        if self._crashed is None:
            self._crashed = asyncio.get_running_loop().create_future()
        return self._crashed

    async def crashed(self) -> None:
        """Raises the first error a pass raised that was not an ApiError; never returns
        otherwise. Run it beside the loops that mark keys."""
        await self._crashed_future()

    async def close(self) -> None:
        self._closed = True
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
