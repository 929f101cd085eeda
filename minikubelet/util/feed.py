"""A bounded feed of changes for one watcher, shared by the pod and event watches.

A reader that falls more than ``max_lag`` changes behind is cut off rather
than slowing the agent down or growing its memory: its backlog is dropped at
once and ``overrun`` is set; like an API watch that expired (410 Gone), it
starts again from a fresh list. ``next`` returns None once the feed is
closed or overrun and drained.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Feed(Generic[T]):
    def __init__(self, max_lag: int, on_close: Callable[[Feed[T]], None]) -> None:
        if max_lag < 1:
            raise ValueError(f"max_lag must be at least 1, not {max_lag}")
        self._max_lag = max_lag
        self._on_close = on_close
        # One slot more than the lag allows, so the None that ends the feed always fits.
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(max_lag + 1)
        self.closed = False
        self.overrun = False

    def offer(self, change: T) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._max_lag:
            self.overrun = True
            # The reader has to relist anyway; keeping the backlog would only pin old objects.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.close()
            return
        self._queue.put_nowait(change)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close(self)
            self._queue.put_nowait(None)

    def pending(self, limit: int | None = None) -> list[T]:
        """Changes already queued (at most ``limit``), without waiting."""
        out: list[T] = []
        while not self._queue.empty() and (limit is None or len(out) < limit):
            change = self._queue.get_nowait()
            if change is not None:  # None marks the end; next() still reports it via ``closed``
                out.append(change)
        return out

    async def next(self) -> T | None:
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()
