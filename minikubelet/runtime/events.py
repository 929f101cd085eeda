"""The Docker event stream, read on its own thread and handed to the event loop.

The stream is what makes the agent react without polling: a container's
``die`` reaches its pod worker as soon as Docker emits it. When the stream
breaks (dockerd restarting, a socket error), it reconnects with back-off;
every (re)connection triggers a relist, since events may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from minikubelet.runtime.executor import DockerExecutor
from minikubelet.util.backoff import ExponentialDelay

log = logging.getLogger(__name__)

EVENT_ACTIONS = ("start", "die", "oom", "destroy")


class EventStream:
    def __init__(
        self,
        executor: DockerExecutor,
        *,
        filters: dict[str, list[str]],
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[dict[str, Any]], None],
        on_connected: Callable[[], None],
        on_disconnected: Callable[[str], None],
        name: str = "docker-events",
    ) -> None:
        self._executor = executor
        self._filters = filters
        self._loop = loop
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._stop = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._delay = ExponentialDelay(initial=0.1, cap=5.0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:
                log.debug("closing the event stream failed", exc_info=True)

    @property
    def alive(self) -> bool:
        """False once the reading thread has ended without being asked to stop."""
        return self._stop.is_set() or not self._thread.ident or self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed while we were reading
            self._loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            reason = "stream ended"
            client = None
            try:
                client = self._executor.new_stream_client()
                stream = client.events(decode=True, filters=self._filters)
                with self._lock:
                    self._stream = stream
                if self._stop.is_set():
                    break
                self._post(self._on_connected)
                attempt = 0
                for event in stream:
                    self._post(self._on_event, event)
            except Exception as e:
                reason = f"{type(e).__name__}: {e}"
            finally:
                with self._lock:
                    self._stream = None
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        log.debug("closing the event client failed", exc_info=True)
            if self._stop.is_set():
                break
            self._post(self._on_disconnected, reason)
            self._stop.wait(self._delay.delay(attempt))
            attempt += 1
