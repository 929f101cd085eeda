"""The Docker runtime as the agent and the pod workers see it: one object over its parts.

``DockerRuntime`` builds the parts from ``RuntimeConfig`` and hands their
work on; it decides nothing itself:

- ``pods.PodManager``: sandboxes and containers made, started, stopped, removed;
- ``pleg.Pleg``: the runtime cache kept current by events and relists;
- ``network.BridgeNetwork``: the pod network and its addresses;
- ``exec.ExecRunner``: commands run in containers for probes and hooks;
- ``images.ImageStore``: images per pull policy, and the sandbox image.

All of them call the engine through one ``executor.DockerExecutor``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerRecord
from minikubelet.errors import MinikubeletError, RuntimeUnavailableError
from minikubelet.model.spec import Pod, PodUID
from minikubelet.runtime import calls
from minikubelet.runtime.actions import StartContainer
from minikubelet.runtime.dockerspec import NodeResources
from minikubelet.runtime.exec import ExecRunner
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.images import ImageStore
from minikubelet.runtime.logs import ContainerLog, LogOptions, LogReader
from minikubelet.runtime.network import BridgeNetwork
from minikubelet.runtime.pleg import Pleg
from minikubelet.runtime.pods import PodContext, PodEventSink, PodManager, PostStart
from minikubelet.runtime.volumes import PodDirectory, PodPaths, remove_pod_dirs
from minikubelet.util.backoff import ExponentialDelay

log = logging.getLogger(__name__)

CONNECT_RETRY = ExponentialDelay(initial=0.2, cap=5.0)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    node_name: str
    state_dir: Path
    network_name: str
    pod_cidr: str
    infra_image: str
    host_ip: str
    pull_timeout: float = 300.0
    infra_pull_timeout: float = 30.0
    # Kubelet gives static pods negative OOM scores; that needs CAP_SYS_RESOURCE.
    lower_oom_scores: bool = True


class DockerRuntime:
    def __init__(
        self,
        config: RuntimeConfig,
        executor: DockerExecutor,
        *,
        cache: RuntimeCache,
        events: PodEventSink,
        node: NodeResources,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.executor = executor
        self.cache = cache
        self.paths = PodPaths(config.state_dir)
        self.images = ImageStore(executor, pull_timeout=config.pull_timeout)
        self.network = BridgeNetwork(
            executor,
            name=config.network_name,
            pod_cidr=config.pod_cidr,
            node_name=config.node_name,
        )
        self.pleg = Pleg(
            executor,
            cache,
            node_name=config.node_name,
            network=self.network,
            paths=self.paths,
            image_ids=self._image_id_for,
            clock=clock,
        )
        self.pods = PodManager(
            executor,
            cache,
            network=self.network,
            images=self.images,
            paths=self.paths,
            events=events,
            node=node,
            node_name=config.node_name,
            host_ip=config.host_ip,
            infra_image=config.infra_image,
            lower_oom_scores=config.lower_oom_scores,
            image_ids=self._image_id_for,
            expect_destroy=self.pleg.expect_destroy,
            clock=clock,
        )
        self._execs = ExecRunner(executor)
        self._logs = LogReader(executor)

    def _image_id_for(self, image: str) -> str:
        info = self.images.cached(image)
        return info.status_id if info is not None else ""

    # --- lifecycle ---

    async def connect(self) -> None:
        """Wait for the engine, then set up the network and sandbox image; retries until done."""
        attempt = 0
        while True:
            try:
                await self.executor.call(calls.ping)
                await self.network.ensure()
                self.pods.infra_image = await self.images.ensure_pause_image(
                    self.config.infra_image, pull_timeout=self.config.infra_pull_timeout
                )
                return
            except RuntimeUnavailableError as e:
                delay = CONNECT_RETRY.delay(attempt)
                attempt += 1
                log.warning("Docker engine not available (%s); retrying in %.1fs", e, delay)
                self.executor.reset_client()
            await asyncio.sleep(delay)

    def start_events(self) -> None:
        self.pleg.start()

    def events_alive(self) -> bool:
        """False if an event stream's thread died: the agent would no longer see deaths."""
        return self.pleg.alive()

    async def relist(self) -> None:
        await self.pleg.relist()

    def is_stale(self) -> bool:
        return self.cache.stale

    def events_connected(self) -> bool:
        """True once the event stream is connected (and while it stays so)."""
        return self.pleg.stream_up

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            return await asyncio.wait_for(self.executor.call_health(calls.ping), timeout)
        except (TimeoutError, MinikubeletError):
            return False

    async def engine_info(self) -> tuple[str, str]:
        """(version, root directory) of the engine, for the node's status; ("", "") when
        it cannot say."""
        try:
            return await self.executor.call(calls.engine_info)
        except MinikubeletError as e:
            log.warning("cannot read the Docker engine's version: %s", e)
            return "", ""

    async def close(self) -> None:
        await self.pleg.close()
        self._execs.close()
        self._logs.shutdown()

    def open_log(self, container_id: str, options: LogOptions) -> ContainerLog:
        """A container's log from the engine's log driver (``runtime/logs.py``); raises
        TooManyLogStreamsError when every stream slot is taken."""
        return self._logs.open(container_id, options)

    # --- what the pod workers use (podworkers.runtime.PodRuntime) ---

    def pod_directory(self, uid: str) -> PodDirectory:
        """Raises UnsafePathError (a MountError) for a uid that cannot name a directory."""
        return self.paths.pod(uid)

    async def exec_in(
        self, container_id: str, command: Sequence[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        return await self._execs.exec_in(container_id, command, timeout=timeout)

    async def start_pod(
        self,
        pod: Pod,
        *,
        attempt: int,
        starts: Sequence[StartContainer],
        start_time: float,
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        return await self.pods.start_pod(
            pod, attempt=attempt, starts=starts, start_time=start_time, post_start=post_start
        )

    def context_for(self, pod: Pod, sandbox: ContainerRecord) -> PodContext:
        return self.pods.context_for(pod, sandbox)

    async def start_containers(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        return await self.pods.start_containers(ctx, starts, post_start)

    async def stop_container(self, record: ContainerRecord, *, timeout: int) -> None:
        await self.pods.stop_container(record, timeout=timeout)

    async def remove_container(self, cid: str) -> None:
        await self.pods.remove_container(cid)

    async def remove_pod(self, uid: PodUID, *, keep_dir: bool = False) -> None:
        await self.pods.remove_pod(uid, keep_dir=keep_dir)

    async def remove_orphaned_pod_dirs(self, keep: set[PodUID]) -> None:
        """Delete pod directories of pods that are gone (an agent stopped mid-removal).

        The kubelet's housekeeping does the same (cleanupOrphanedPodDirs); only
        directories named by a valid uid are touched, through PodDirectory.remove.
        """
        await asyncio.to_thread(remove_pod_dirs, self.paths.pods, keep)
