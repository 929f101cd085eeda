"""Pods on the Docker engine: sandboxes and containers made, started, stopped and removed.

Pod workers decide (``runtime.actions``); this module carries it out with as
few engine calls as a pod needs, and puts what each call did into the
runtime cache at once, so the next decision sees it without an inspect.

Starting a pod is pipelined: the app (or first init) containers are created
while the sandbox starts, since creating a container that joins the sandbox's
namespaces needs the sandbox to exist, not to run. Their starts go out as
soon as the sandbox runs, in spec order; a container with a postStart hook
holds back the ones after it, as in kubelet. Nothing polls: a container is
Running when its start call returns or its start event arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.refs import container_field_path
from minikubelet.container.state import ContainerRecord, ContainerState
from minikubelet.errors import (
    ConflictError,
    CreateContainerConfigError,
    CreateContainerError,
    ImageNeverPullError,
    ImageNotFoundError,
    ImagePullError,
    InvalidImageNameError,
    MinikubeletError,
    NotFoundError,
    RunContainerError,
    RuntimeUnavailableError,
    SandboxError,
)
from minikubelet.events import EventType
from minikubelet.model import naming
from minikubelet.model.spec import Container, Pod, PodUID
from minikubelet.runtime import calls
from minikubelet.runtime.actions import StartContainer
from minikubelet.runtime.dns import read_host_dns
from minikubelet.runtime.dockerspec import (
    CONTAINER_OOM_SCORE_ADJ,
    SANDBOX_OOM_SCORE_ADJ,
    ContainerParams,
    NodeResources,
    SandboxParams,
    container_create_body,
    host_network_hosts_file,
    hosts_file,
    sandbox_create_body,
)
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.images import ImageInfo, ImageStore
from minikubelet.runtime.inspect import record_from_inspect
from minikubelet.runtime.labels import record_from_labels
from minikubelet.runtime.network import BridgeNetwork
from minikubelet.runtime.paths import UnsafePathError
from minikubelet.runtime.volumes import (
    PodDirectory,
    PodPaths,
    container_mounts,
    prepare_volumes,
)
from minikubelet.util.timefmt import go_duration

log = logging.getLogger(__name__)

# Another agent on this engine, or a ``docker run --ip``, may take an address
# the agent thinks free (it learns of them at relists): a pod's new sandbox
# then tries another address at once rather than after the error requeue.
ADDRESS_TRIES = 3


class AddressTakenError(SandboxError):
    """The pod's address is held by a container that is not the pod's."""


class PodEventSink(Protocol):
    def __call__(
        self, pod: Pod, type_: EventType, reason: str, message: str, *, field_path: str = ""
    ) -> None: ...


@dataclass(slots=True)
class PodContext:
    """What a pod's containers are created against: its sandbox, IP and host paths."""

    pod: Pod
    sandbox_id: str
    pod_ip: str
    pod_dir: PodDirectory
    volume_paths: dict[str, Path]
    hosts_path: Path | None


# Runs a container's postStart hook once it has started; the next container waits for it.
PostStart = Callable[[PodContext, Container, str], Awaitable[None]]


class PodManager:
    def __init__(
        self,
        executor: DockerExecutor,
        cache: RuntimeCache,
        *,
        network: BridgeNetwork,
        images: ImageStore,
        paths: PodPaths,
        events: PodEventSink,
        node: NodeResources,
        node_name: str,
        host_ip: str,
        infra_image: str,
        lower_oom_scores: bool,
        image_ids: Callable[[str], str],
        expect_destroy: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._executor = executor
        self._cache = cache
        self._network = network
        self._images = images
        self._paths = paths
        self._events = events
        self._node = node
        self._node_name = node_name
        self._host_ip = host_ip
        # The configured image until connect settles on one present (maybe built here).
        self.infra_image = infra_image
        # Kubelet gives static pods negative OOM scores; that needs CAP_SYS_RESOURCE.
        self._lower_oom_scores = lower_oom_scores
        self._image_ids = image_ids
        self._expect_destroy = expect_destroy
        self._clock = clock
        self._host_dns = read_host_dns()

    # --- engine calls that keep the cache current ---

    async def _create_checked(self, name: str, body: dict[str, Any]) -> str:
        """Create, settling a name clash with a leftover of an interrupted start."""
        try:
            return await self._executor.call(calls.create_container, body, name)
        except ConflictError:
            pass
        try:
            data = await self._executor.call(calls.inspect_container, name)
        except NotFoundError:
            return await self._executor.call(calls.create_container, body, name)
        record = record_from_inspect(data, self._image_ids, paths=self._paths)
        if (data.get("State") or {}).get("Running"):
            # The cache missed a live container: take it in and let the worker look again.
            if record is not None:
                self._cache.put(record)
            raise CreateContainerError(f"container {name} already exists and is running")
        await self._executor.call(calls.remove_container, data["Id"])
        self._cache.remove(data["Id"])
        return await self._executor.call(calls.create_container, body, name)

    async def _start_container(self, cid: str) -> None:
        await self._executor.call(calls.start_container, cid)
        self._cache.started(cid, self._clock())

    async def remove_container(self, cid: str) -> None:
        self._expect_destroy(cid)
        with contextlib.suppress(NotFoundError):
            await self._executor.call(calls.remove_container, cid)
        self._cache.remove(cid)

    async def stop_container(self, record: ContainerRecord, *, timeout: int) -> None:
        """Stop with the image's stop signal, SIGKILL after ``timeout`` seconds."""
        if not record.running:
            return
        # A stop with a grace blocks its thread for up to that long: slow lane.
        call = self._executor.call_slow if timeout > 0 else self._executor.call
        try:
            await call(calls.stop_container, record.id, timeout)
        except NotFoundError:
            self._cache.remove(record.id)

    # --- pods ---

    def _sandbox_record(
        self, cid: str, p: SandboxParams, labels: dict[str, str]
    ) -> ContainerRecord:
        record = record_from_labels(
            cid, labels, state=ContainerState.CREATED, created_at=self._clock(), image=p.image
        )
        assert record is not None
        return record

    async def create_sandbox(self, pod: Pod, *, attempt: int, start_time: float) -> PodContext:
        """Prepare the pod's host side and create (not start) its sandbox."""
        pod_dir = self._paths.pod(pod.uid)
        if pod.spec.host_network:
            pod_ip = ""
        else:
            assert self._network.ipam is not None
            pod_ip = self._network.ipam.allocate(pod.uid)
        volume_paths = prepare_volumes(pod, pod_dir, node_memory=self._node.memory)
        hosts_path = self._write_hosts(pod, pod_dir, pod_ip)
        params = SandboxParams(
            pod=pod,
            node_name=self._node_name,
            image=self.infra_image,
            network=self._network.name,
            pod_ip=pod_ip,
            attempt=attempt,
            start_time=start_time,
            host_dns=self._host_dns,
            oom_score_adj=SANDBOX_OOM_SCORE_ADJ if self._lower_oom_scores else None,
        )
        name, body = sandbox_create_body(params)
        try:
            cid = await self._create_checked(name, body)
        except MinikubeletError as e:
            raise SandboxError(f"Failed to create pod sandbox: {e}") from e
        self._cache.put(self._sandbox_record(cid, params, body["Labels"]))
        return PodContext(pod, cid, pod_ip, pod_dir, volume_paths, hosts_path)

    def _write_hosts(self, pod: Pod, pod_dir: PodDirectory, pod_ip: str) -> Path | None:
        spec = pod.spec
        aliases = [(a.ip, a.hostnames) for a in spec.host_aliases]
        if spec.host_network:
            try:
                node_hosts = Path("/etc/hosts").read_text()
            except OSError:
                node_hosts = ""
            pod_dir.write_hosts(host_network_hosts_file(node_hosts, aliases))
        else:
            hostname = naming.pod_hostname(pod.name, spec.hostname)
            fqdn = (
                f"{hostname}.{spec.subdomain}.{pod.namespace}.svc.cluster.local"
                if spec.subdomain
                else ""
            )
            pod_dir.write_hosts(
                hosts_file(pod_ip=pod_ip, hostname=hostname, aliases=aliases, fqdn=fqdn)
            )
        return pod_dir.hosts_path

    def context_for(self, pod: Pod, sandbox: ContainerRecord) -> PodContext:
        """The context of a pod whose sandbox exists: host paths are re-checked, not re-created."""
        pod_dir = self._paths.pod(pod.uid)
        pod_ip = sandbox.label(naming.POD_IP)
        if pod_ip and self._network.ipam is not None:
            self._network.ipam.reserve(pod.uid, pod_ip)
        volume_paths = prepare_volumes(pod, pod_dir, node_memory=self._node.memory)
        hosts_path = (
            pod_dir.hosts_path
            if pod_dir.hosts_path.exists()
            else self._write_hosts(pod, pod_dir, pod_ip)
        )
        return PodContext(pod, sandbox.id, pod_ip, pod_dir, volume_paths, hosts_path)

    async def start_sandbox(self, ctx: PodContext) -> None:
        # The pod's older sandboxes on its address may not have given it back yet.
        previous = [
            r.id
            for r in self._cache.pod_state(ctx.pod.uid).sandboxes
            if r.id != ctx.sandbox_id and r.label(naming.POD_IP) == ctx.pod_ip
        ]
        await self._network.await_released(ctx.pod_ip, previous, pod_key=ctx.pod.key)
        try:
            await self._start_container(ctx.sandbox_id)
        except MinikubeletError as e:
            if ctx.pod_ip and "already in use" in str(e):
                # Someone else holds this address: keep it away from us and pick another.
                self._network.taken(ctx.pod.uid, ctx.pod_ip)
                raise AddressTakenError(f"Failed to start pod sandbox: {e}") from e
            raise SandboxError(f"Failed to start pod sandbox: {e}") from e

    async def create_container(self, ctx: PodContext, start: StartContainer) -> str:
        """Create one container (pulling its image per policy); returns its id."""
        if start.existing is not None:
            return start.existing.id
        pod, container = ctx.pod, start.container
        info = await self._ensure_image(pod, container)
        term_log = ctx.pod_dir.new_termination_log(container.name, start.restart_count)
        mounts = container_mounts(
            container,
            ctx.volume_paths,
            pod_dir=ctx.pod_dir,
            hosts_file=ctx.hosts_path,
            termination_log=term_log,
        )
        params = ContainerParams(
            pod=pod,
            container=container,
            node_name=self._node_name,
            sandbox_id=ctx.sandbox_id,
            restart_count=start.restart_count,
            pod_ip=self._host_ip if pod.spec.host_network else ctx.pod_ip,
            host_ip=self._host_ip,
            mounts=mounts,
            termination_log=str(term_log),
            image_user=info.user,
            node=self._node,
            oom_score_adj=CONTAINER_OOM_SCORE_ADJ if self._lower_oom_scores else None,
            backoff_delay=start.backoff.delay if start.backoff is not None else None,
        )
        field_path = container_field_path(pod, container.name)
        try:
            name, body = container_create_body(params)
        except CreateContainerConfigError as e:
            self._events(pod, EventType.WARNING, "Failed", f"Error: {e}", field_path=field_path)
            raise
        try:
            cid = await self._create_checked(name, body)
        except ImageNotFoundError:
            # The image went away since we cached it: check again, once.
            self._images.forget(container.image)
            info = await self._ensure_image(pod, container)
            cid = await self._create_checked(name, body)
        except MinikubeletError as e:
            if not isinstance(e, RuntimeUnavailableError):
                # An engine that went away is no fault of this container: no event.
                self._events(pod, EventType.WARNING, "Failed", f"Error: {e}", field_path=field_path)
            raise CreateContainerError(str(e)) from e
        record = record_from_labels(
            cid,
            body["Labels"],
            state=ContainerState.CREATED,
            created_at=self._clock(),
            image=container.image,
            image_id=info.status_id,
        )
        assert record is not None
        self._cache.put(record)
        self._events(
            pod,
            EventType.NORMAL,
            "Created",
            f"Created container: {container.name}",
            field_path=container_field_path(pod, container.name),
        )
        return cid

    async def _ensure_image(self, pod: Pod, container: Container) -> ImageInfo:
        """The container's image per its pull policy, with the kubelet's image events:
        Pulling/Pulled, or the failure's own event followed by ``Error: <reason>``."""
        field_path = container_field_path(pod, container.name)
        image = container.image
        began = self._clock()

        def pulling() -> None:
            nonlocal began
            began = self._clock()
            self._events(
                pod, EventType.NORMAL, "Pulling", f'Pulling image "{image}"', field_path=field_path
            )

        try:
            info, pulled = await self._images.ensure(
                image, container.image_pull_policy, pulling=pulling
            )
        except (ImagePullError, ImageNeverPullError, InvalidImageNameError) as e:
            # EnsureImageExists' event, then startContainer's "Error: <reason>".
            if isinstance(e, ImageNeverPullError):
                first = "ErrImageNeverPull"
            elif isinstance(e, InvalidImageNameError):
                first = "InspectFailed"
            else:
                first = "Failed"
            self._events(pod, EventType.WARNING, first, str(e), field_path=field_path)
            self._events(
                pod, EventType.WARNING, "Failed", f"Error: {e.reason}", field_path=field_path
            )
            raise
        except RuntimeUnavailableError:
            raise  # the engine is away: not this container's failure
        except MinikubeletError as e:
            self._events(pod, EventType.WARNING, "Failed", f"Error: {e}", field_path=field_path)
            raise
        if not pulled:
            # Kubelet reports this for every container start; it is the only trace of the check.
            self._events(
                pod,
                EventType.NORMAL,
                "Pulled",
                f'Container image "{container.image}" already present on machine',
                field_path=field_path,
            )
        else:
            # The puller here is not a queue, so the pull and the wait are one duration.
            took = go_duration(self._clock() - began)
            self._events(
                pod,
                EventType.NORMAL,
                "Pulled",
                f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                f"Image size: {info.size} bytes.",
                field_path=field_path,
            )
        return info

    async def start_container(self, ctx: PodContext, container: Container, cid: str) -> None:
        try:
            await self._start_container(cid)
        except MinikubeletError as e:
            self._events(
                ctx.pod,
                EventType.WARNING,
                "Failed",
                f"Error: {e}",
                field_path=container_field_path(ctx.pod, container.name),
            )
            raise RunContainerError(str(e)) from e
        self._events(
            ctx.pod,
            EventType.NORMAL,
            "Started",
            f"Started container {container.name}",
            field_path=container_field_path(ctx.pod, container.name),
        )

    async def start_pod(
        self,
        pod: Pod,
        *,
        attempt: int,
        starts: Sequence[StartContainer],
        start_time: float,
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        """Create and start a sandbox and, overlapped with it, the first containers.

        Returns the errors of containers that could not be started, by name.
        Raises SandboxError (or MountError) if the sandbox itself failed.
        """
        tries = ADDRESS_TRIES
        while True:
            tries -= 1
            ctx = await self.create_sandbox(pod, attempt=attempt, start_time=start_time)
            sandbox_start = asyncio.ensure_future(self.start_sandbox(ctx))
            creates = [asyncio.ensure_future(self.create_container(ctx, s)) for s in starts]
            try:
                await sandbox_start
            except BaseException as e:
                # Containers made for a sandbox that never ran would only inflate restart counts.
                created = await asyncio.gather(*creates, return_exceptions=True)
                for cid in created:
                    if isinstance(cid, str):
                        await self.remove_container(cid)
                if not isinstance(e, AddressTakenError) or not tries:
                    raise
                # Nothing ran: the same attempt again, on another address.
                await self.remove_container(ctx.sandbox_id)
                continue
            return await self._start_in_order(ctx, starts, creates, post_start)

    async def start_containers(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        """Create and start containers in a running sandbox."""
        creates = [asyncio.ensure_future(self.create_container(ctx, s)) for s in starts]
        return await self._start_in_order(ctx, starts, creates, post_start)

    async def _start_in_order(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        creates: Sequence[asyncio.Future[str]],
        post_start: PostStart | None,
    ) -> dict[str, MinikubeletError]:
        errors: dict[str, MinikubeletError] = {}
        running: list[asyncio.Future[None]] = []
        names: list[str] = []
        for start, create in zip(starts, creates, strict=True):
            container = start.container
            try:
                cid = await create
            except MinikubeletError as e:
                errors[container.name] = e
                continue
            task = asyncio.ensure_future(self.start_container(ctx, container, cid))
            if post_start is not None and container.lifecycle.post_start is not None:
                # The hook must finish before the next container starts.
                try:
                    await task
                    await post_start(ctx, container, cid)
                except MinikubeletError as e:
                    errors[container.name] = e
                continue
            running.append(task)
            names.append(container.name)
        for name, result in zip(
            names, await asyncio.gather(*running, return_exceptions=True), strict=True
        ):
            if isinstance(result, MinikubeletError):
                errors[name] = result
            elif isinstance(result, BaseException):
                raise result
        return errors

    async def remove_pod(self, uid: PodUID, *, keep_dir: bool = False) -> None:
        """Remove a pod's containers (apps first, sandboxes last), its IP and its directory."""
        state = self._cache.pod_state(uid)
        for record in state.containers:
            await self.remove_container(record.id)
        for record in state.sandboxes:
            await self.remove_container(record.id)
        if self._network.ipam is not None:
            self._network.ipam.release(uid)
        if keep_dir:
            return
        try:
            pod_dir = self._paths.pod(uid)
        except UnsafePathError as e:
            log.error("pod %s: not removing its directory: %s", uid, e)
            return
        if not await asyncio.to_thread(pod_dir.remove):
            log.error("pod %s: its directory %s was not entirely removed", uid, pod_dir.root)
