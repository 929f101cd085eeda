"""Keeping the runtime cache current: Docker's event stream, and relists.

The kubelet's PLEG (evented, with a relist as its safety net). Events make
the agent react without polling: a container's ``die`` reaches its pod
worker as soon as Docker emits it. A relist lists the node's containers and
merges them into the cache when the agent starts, whenever the stream
(re)connects (events may have been missed meanwhile), and every few minutes.
While the stream is down the cache is stale and pod workers wait; a failed
relist is retried until one succeeds, so they never wait for ever.

The network stream tells which sandboxes lost their network, and when an
endpoint is released (``network.BridgeNetwork`` waits on that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerRecord
from minikubelet.errors import MinikubeletError, NotFoundError
from minikubelet.model import naming
from minikubelet.runtime import calls
from minikubelet.runtime.events import EVENT_ACTIONS, EventStream
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.inspect import (
    exit_details,
    record_from_inspect,
    state_of,
    termination_message,
)
from minikubelet.runtime.network import BridgeNetwork
from minikubelet.runtime.volumes import PodPaths
from minikubelet.util.backoff import ExponentialDelay

log = logging.getLogger(__name__)

# A relist that failed is retried, since every pod worker waits while the cache is stale.
RELIST_RETRY = ExponentialDelay(initial=0.5, cap=30.0)
# A full relist as a safety net, as the kubelet's evented PLEG does every few
# minutes: a missed event costs at most this long, while a relist of 110 pods
# costs one list call (containers whose state is unchanged are not inspected).
RELIST_PERIOD = 300.0
# How long a container the agent removes is expected to be destroyed; its
# destroy event normally ends the wait first.
REMOVING_TTL = 60.0
# Log tail used for FallbackToLogsOnError, as kubelet: 80 lines, at most 2 KiB.
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


class Pleg:
    def __init__(
        self,
        executor: DockerExecutor,
        cache: RuntimeCache,
        *,
        node_name: str,
        network: BridgeNetwork,
        paths: PodPaths,
        image_ids: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._executor = executor
        self._cache = cache
        self._node_label = f"{naming.NODE}={node_name}"
        self._network = network
        self._paths = paths
        self._image_ids = image_ids
        self._clock = clock
        self._stream: EventStream | None = None
        self._network_stream: EventStream | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._removing: set[str] = set()
        self._relisting: asyncio.Task[None] | None = None
        self.stream_up = False

    def start(self) -> None:
        """Start the event streams (each reconnection relists) and the periodic relist."""
        loop = asyncio.get_running_loop()
        self._stream = EventStream(
            self._executor,
            filters={
                "type": ["container"],
                "label": [self._node_label],
                "event": list(EVENT_ACTIONS),
            },
            loop=loop,
            on_event=self._on_event,
            on_connected=self._on_stream_connected,
            on_disconnected=self._on_stream_disconnected,
        )
        self._stream.start()
        self._spawn(self._relist_periodically())
        if self._network.id:
            # Network events carry the network's labels, not the container's,
            # so they need a stream of their own, filtered by our network.
            self._network_stream = EventStream(
                self._executor,
                filters={
                    "type": ["network"],
                    "network": [self._network.id],
                    "event": ["disconnect"],
                },
                loop=loop,
                on_event=self._on_network_event,
                on_connected=lambda: None,
                on_disconnected=lambda reason: None,
                name="docker-network-events",
            )
            self._network_stream.start()

    def alive(self) -> bool:
        """False if an event stream's thread died: the agent would no longer see deaths."""
        return all(s.alive for s in (self._stream, self._network_stream) if s is not None)

    async def close(self) -> None:
        for stream in (self._stream, self._network_stream):
            if stream is not None:
                stream.stop()
                await asyncio.to_thread(stream.join, 2.0)
        for task in list(self._background):
            task.cancel()
        if self._relisting is not None:
            self._relisting.cancel()

    def expect_destroy(self, container_id: str) -> None:
        """The agent is removing the container: its exit details are not worth an inspect."""
        self._removing.add(container_id)
        # Normally the destroy event clears it; this bounds the set if none comes.
        asyncio.get_running_loop().call_later(REMOVING_TTL, self._removing.discard, container_id)

    # --- relist ---

    async def relist(self) -> None:
        """Bring the cache up to the engine: list ours, inspect what is new or changed.

        Merged, not replaced: events and the agent's own calls keep the cache
        current while the list is in flight, and what they report is newer.
        """
        with self._cache.observing() as mark:
            summaries = await self._executor.call(calls.list_containers, self._node_label)
            listed = {s["Id"] for s in summaries}
            to_inspect = [
                s["Id"]
                for s in summaries
                if (known := self._cache.get(s["Id"])) is None
                or known.state is not state_of(s.get("State", ""))
            ]
            results = await asyncio.gather(
                *(self._executor.call(calls.inspect_container, cid) for cid in to_inspect),
                return_exceptions=True,
            )
            records: list[ContainerRecord] = []
            for cid, result in zip(to_inspect, results, strict=True):
                if isinstance(result, NotFoundError):
                    listed.discard(cid)  # removed between list and inspect
                    continue
                if isinstance(result, BaseException):
                    raise result
                record = self._record(result)
                if record is not None:
                    records.append(record)
            self._cache.finish_relist(mark, listed=listed, records=records)
        ipam = self._network.ipam
        if ipam is not None:
            for record in self._cache.records():
                ip = record.label(naming.POD_IP)
                if record.is_sandbox and ip:
                    ipam.reserve(record.pod_uid, ip)
            await self._network.reserve_foreign(self._is_our_sandbox)

    def _is_our_sandbox(self, container_id: str) -> bool:
        record = self._cache.get(container_id)
        return record is not None and record.is_sandbox

    def _record(self, data: dict[str, Any]) -> ContainerRecord | None:
        return record_from_inspect(data, self._image_ids, paths=self._paths)

    def _request_relist(self) -> None:
        """Relist, unless one is under way: it goes on until it has caught up."""
        if self._relisting is None or self._relisting.done():
            self._relisting = asyncio.get_running_loop().create_task(self._relist_until_current())

    async def _relist_until_current(self) -> None:
        """Relist, retrying with back-off until it succeeds with the events flowing.

        While the cache is stale every pod worker waits, so a relist that
        failed must be tried again, not merely logged. One that succeeded
        but began before the stream was lost again leaves the cache stale:
        it goes again, once the stream is back (reconnecting asks for it).
        """
        attempt = 0
        while True:
            try:
                await self.relist()
            except MinikubeletError as e:
                delay = RELIST_RETRY.delay(attempt)
                attempt += 1
                log.warning("relist failed (%s); retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                continue
            if not (self._cache.stale and self.stream_up):
                return
            attempt = 0

    async def _relist_periodically(self) -> None:
        while True:
            await asyncio.sleep(RELIST_PERIOD)
            self._request_relist()

    # --- events ---

    def _on_stream_connected(self) -> None:
        # The cache stays stale until a relist begun from now on has caught up.
        self.stream_up = True
        self._cache.events_resumed()
        log.info("Docker event stream connected")
        self._request_relist()

    def _on_stream_disconnected(self, reason: str) -> None:
        if self.stream_up:
            log.warning("Docker event stream lost (%s); reconnecting", reason)
        self.stream_up = False
        self._cache.events_lost()

    def _on_event(self, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        cid = actor.get("ID") or event.get("id") or ""
        attributes = actor.get("Attributes") or {}
        at = (event.get("timeNano") or 0) / 1e9 or self._clock()
        if action == "start":
            if self._cache.get(cid) is None:
                self._spawn(self._adopt(cid))
            else:
                self._cache.started(cid, at)
        elif action == "die":
            exit_code = int(attributes.get("exitCode", "-1") or -1)
            record = self._cache.died(cid, at=at, exit_code=exit_code)
            if cid in self._removing:
                # Exit details of a container we are deleting would be read by no
                # one, and an inspect would compete with the removals.
                pass
            elif record is None and self._cache.get(cid) is None:
                self._spawn(self._adopt(cid))
            elif record is not None:
                self._spawn(self._refine_exit(record))
        elif action == "oom":
            self._cache.oom(cid)
        elif action == "destroy":
            self._network.endpoint_released(cid)  # a destroyed container holds no endpoint
            self._removing.discard(cid)
            self._cache.remove(cid)

    def _on_network_event(self, event: dict[str, Any]) -> None:
        cid = ((event.get("Actor") or {}).get("Attributes") or {}).get("container", "")
        self._network.endpoint_released(cid)
        record = self._cache.get(cid)
        if record is not None and record.is_sandbox and record.running:
            log.info("pod %s lost its network", record.pod_name)
            self._cache.update(cid, network_lost=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _adopt(self, cid: str) -> None:
        with self._cache.observing() as mark:
            try:
                data = await self._executor.call(calls.inspect_container, cid)
            except MinikubeletError:
                return
            record = self._record(data)
            if record is not None:
                # A destroy handled meanwhile must not bring it back.
                self._cache.put_observed(mark, record)

    async def _refine_exit(self, record: ContainerRecord) -> None:
        """Exact exit details (times, OOM, start error) and the termination message."""
        changes: dict[str, Any] = {}
        # Gone already (removed at once): the die event's details stand.
        with contextlib.suppress(MinikubeletError):
            data = await self._executor.call(calls.inspect_container, record.id)
            changes.update(exit_details(data, record))
        message = termination_message(self._paths, record.labels)
        if (
            not message
            and record.exit_code not in (0, None)
            and record.label(naming.TERMINATION_MESSAGE_POLICY) == "FallbackToLogsOnError"
        ):
            try:
                tail = await self._executor.call(calls.logs_tail, record.id, FALLBACK_LOG_LINES)
                message = tail[-FALLBACK_LOG_BYTES:].decode("utf-8", errors="replace")
            except MinikubeletError:
                message = ""
        if message:
            changes["message"] = message
        if changes:
            self._cache.update(record.id, **changes)
