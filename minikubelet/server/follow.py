"""The tail of every watch stream: changes as they come, bookmarks, the timeout, overrun.

Pods and events are watched the same way once the initial state or replay is
written: wait for the feed's next change (or the next bookmark, or the
timeout), write what the watcher should see of a batch of changes, and end
with an ERROR event carrying a 410 ``Expired`` Status when the watcher fell
``watch_max_lag`` changes behind, as an expired API watch ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TypeVar

from minikubelet.server.deps import ServerLimits
from minikubelet.server.errors import status_bytes
from minikubelet.server.stream import BoundedStream
from minikubelet.util.feed import Feed

# Changes taken from the feed per write: bounds what one write renders.
BATCH = 256

C = TypeVar("C")


async def follow(
    stream: BoundedStream,
    feed: Feed[C],
    *,
    limits: ServerLimits,
    timeout: int | None,
    bookmarks: bool,
    render: Callable[[list[C]], Iterable[bytes]],
    bookmark: Callable[[], bytes],
    what: str,
) -> None:
    """Stream ``feed`` until ``timeout`` seconds (None or 0: until the client or the agent
    stops), the feed ends, or the client is gone; ``what`` names the changes in the
    overrun message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    interval = limits.bookmark_interval if bookmarks else None
    bookmark_due = loop.time() + interval if interval is not None else None
    while True:
        wake = deadline
        if bookmark_due is not None:
            wake = bookmark_due if wake is None else min(wake, bookmark_due)
        try:
            async with asyncio.timeout_at(wake):
                change = await feed.next()
        except TimeoutError:
            if deadline is not None and loop.time() >= deadline:
                break
            # Nothing is queued: every change up to the current version has been sent.
            if not await stream.write(bookmark()):
                return
            bookmark_due = loop.time() + (interval or 0.0)
            continue
        if change is None:
            if feed.overrun:
                gone = status_bytes(
                    410,
                    f"this watch fell more than {limits.watch_max_lag} {what} behind; "
                    "list again, then watch",
                )
                if not await stream.write(b'{"type":"ERROR","object":' + gone + b"}\n"):
                    return
            break
        if not await stream.write_all(render([change, *feed.pending(BATCH - 1)])):
            return
    await stream.finish()
