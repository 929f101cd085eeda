"""Pods on the Docker engine: the only code that tells Docker what to do.

Pod workers decide (``runtime.actions``); this module carries it out with as
few engine calls as a pod needs, and keeps the runtime cache current.

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
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker

from minikubelet.errors import (
    ConflictError,
    CreateContainerError,
    ImageNotFoundError,
    MinikubeletError,
    NotFoundError,
    RunContainerError,
    RuntimeUnavailableError,
    SandboxError,
)
from minikubelet.events import EventType
from minikubelet.model import naming
from minikubelet.model.spec import Container, Pod, PodUID
from minikubelet.runtime.actions import StartContainer
from minikubelet.runtime.dockerspec import (
    CONTAINER_OOM_SCORE_ADJ,
    SANDBOX_OOM_SCORE_ADJ,
    ContainerParams,
    HostDNS,
    NodeResources,
    SandboxParams,
    container_create_body,
    host_network_hosts_file,
    hosts_file,
    sandbox_create_body,
)
from minikubelet.runtime.events import EVENT_ACTIONS, EventStream
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.images import ImageInfo, ImageStore
from minikubelet.runtime.network import FOREIGN, IPAllocator, PodNetwork
from minikubelet.runtime.paths import UnsafePathError
from minikubelet.runtime.procs import boot_ticks, kill_if_same
from minikubelet.runtime.state import (
    ContainerRecord,
    ContainerState,
    RuntimeCache,
    record_from_labels,
)
from minikubelet.runtime.volumes import (
    PodDirectory,
    PodPaths,
    container_mounts,
    prepare_volumes,
    read_termination_message,
)
from minikubelet.util.backoff import ExponentialDelay
from minikubelet.util.timefmt import parse_docker_time

log = logging.getLogger(__name__)

# Log tail used for FallbackToLogsOnError, as kubelet: 80 lines, at most 2 KiB.
FALLBACK_LOG_LINES = 80
REMOVING_TTL = 60.0
# A relist that failed is retried, since every pod worker waits while the cache is stale.
RELIST_RETRY = ExponentialDelay(initial=0.5, cap=30.0)
# A full relist as a safety net, as the kubelet's evented PLEG does every few
# minutes: a missed event costs at most this long, while a relist of 110 pods
# costs one list call (containers whose state is unchanged are not inspected).
RELIST_PERIOD = 300.0
# How long a new sandbox waits for its pod's previous sandbox to give back the
# pod's address. Docker emits "die" before it releases the endpoint (~0.1 s
# later, with a network "disconnect" event); past this the start goes ahead.
ADDRESS_RELEASE_TIMEOUT = 10.0
# Another agent on this engine, or a ``docker run --ip``, may take an address
# the agent thinks free (it learns of them at relists): a pod's new sandbox
# then tries another address at once rather than after the error requeue.
ADDRESS_TRIES = 3
EXEC_POOL_SIZE = 8
# What the kubelet keeps of a probe's or hook's output.
EXEC_OUTPUT_LIMIT = 10 * 1024
FALLBACK_LOG_BYTES = 2048


class AddressTakenError(SandboxError):
    """The pod's address is held by a container that is not the pod's."""


class PodEventSink(Protocol):
    def __call__(
        self, pod: Pod, type_: EventType, reason: str, message: str, *, field_path: str = ""
    ) -> None: ...


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


@dataclass(slots=True)
class PodContext:
    """What a pod's containers are created against: its sandbox, IP and host paths."""

    pod: Pod
    sandbox_id: str
    pod_ip: str
    pod_dir: PodDirectory
    volume_paths: dict[str, Path]
    hosts_path: Path | None


def _state_of(status: str) -> ContainerState:
    if status in ("running", "paused", "restarting"):
        return ContainerState.RUNNING
    if status in ("exited", "dead", "removing"):
        return ContainerState.EXITED
    if status == "created":
        return ContainerState.CREATED
    return ContainerState.UNKNOWN


def termination_message(paths: PodPaths | None, labels: Mapping[str, str]) -> str:
    """The message an exited container left in the file the agent made for it.

    The label names that file, but anyone with access to Docker can label a
    container: only a label naming the very path the agent builds from the
    container's checked uid, name and restart count is read.
    """
    label = labels.get(naming.TERMINATION_LOG, "")
    if paths is None or not label:
        return ""
    try:
        expected = paths.pod(labels.get(naming.POD_UID, "")).termination_log(
            labels.get(naming.CONTAINER_NAME, ""), int(labels.get(naming.RESTART_COUNT, ""))
        )
    except (UnsafePathError, ValueError):
        return ""
    if str(expected) != label:
        log.warning("termination log label %r is not the agent's file; not read", label)
        return ""
    return read_termination_message(expected)


def record_from_inspect(
    data: dict[str, Any],
    image_ids: Callable[[str], str] | None = None,
    *,
    paths: PodPaths | None = None,
) -> ContainerRecord | None:
    config = data.get("Config") or {}
    state = data.get("State") or {}
    labels = config.get("Labels") or {}
    created = parse_docker_time(data.get("Created")) or 0.0
    record = record_from_labels(
        data["Id"],
        labels,
        state=_state_of(state.get("Status", "")),
        created_at=created,
        image=config.get("Image", ""),
        image_id=f"docker://{data.get('Image', '')}",
    )
    if record is None:
        return None
    if image_ids is not None:
        record = dataclasses.replace(record, image_id=image_ids(record.image) or record.image_id)
    exited = record.state is ContainerState.EXITED
    network_mode = (data.get("HostConfig") or {}).get("NetworkMode") or ""
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    network_lost = (
        record.is_sandbox
        and record.state is ContainerState.RUNNING
        and network_mode not in ("", "host", "none", "default", "bridge")
        and not network_mode.startswith("container:")
        and network_mode not in networks
    )
    return dataclasses.replace(
        record,
        network_lost=network_lost,
        started_at=parse_docker_time(state.get("StartedAt")),
        finished_at=parse_docker_time(state.get("FinishedAt")) if exited else None,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "",
        message=termination_message(paths, labels) if exited else "",
    )


def read_host_dns(path: str = "/etc/resolv.conf") -> HostDNS:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return HostDNS()
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return HostDNS(tuple(servers), tuple(searches), tuple(options))


def _list_ours(client: docker.APIClient, label: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.containers(all=True, filters={"label": label})
    return result


def _inspect(client: docker.APIClient, container_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.inspect_container(container_id)
    return result


def _create(client: docker.APIClient, body: dict[str, Any], name: str) -> str:
    result: dict[str, Any] = client.create_container_from_config(body, name=name)  # type: ignore[no-untyped-call]
    return str(result["Id"])


def _start(client: docker.APIClient, container_id: str) -> None:
    client.start(container_id)


def _stop(client: docker.APIClient, container_id: str, timeout: int) -> None:
    client.stop(container_id, timeout=timeout)


def _remove(client: docker.APIClient, container_id: str) -> None:
    client.remove_container(container_id, force=True, v=False)


def _logs_tail(client: docker.APIClient, container_id: str, lines: int) -> bytes:
    data: bytes = client.logs(container_id, stdout=True, stderr=True, tail=lines)
    return data


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


def _inspect_network(client: docker.APIClient, network_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.inspect_network(network_id)
    return result


def _ping(client: docker.APIClient) -> bool:
    return bool(client.ping())


def _version(client: docker.APIClient) -> dict[str, Any]:
    result: dict[str, Any] = client.version()
    return result


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
        # Hook and probe execs get their own threads: an exec takes ~40 ms of
        # engine time and may hang, and must never hold up pod creation.
        self._exec_executor = DockerExecutor(executor.base_url, pool_size=EXEC_POOL_SIZE)
        # Exec PIDs are host PIDs only when the engine runs on this machine.
        base_url = executor.base_url or os.environ.get("DOCKER_HOST", "")
        self._local_engine = not base_url or base_url.startswith(("unix://", "http+unix://"))
        self._events = events
        self._node = node
        self._clock = clock
        self.infra_image = config.infra_image
        self.ipam: IPAllocator | None = None
        self.engine_version = ""
        self._stream: EventStream | None = None
        self._network_stream: EventStream | None = None
        self._host_dns = read_host_dns()
        self._background: set[asyncio.Task[None]] = set()
        self._removing: set[str] = set()
        self.connected = asyncio.Event()
        self.stream_up = False
        self._relisting: asyncio.Task[None] | None = None
        self._network_id = ""
        # Sandboxes whose endpoint a new sandbox of their pod waits to see released.
        self._release_waiters: dict[str, asyncio.Event] = {}

    @property
    def node_label(self) -> str:
        return f"{naming.NODE}={self.config.node_name}"

    def pod_directory(self, uid: str) -> PodDirectory:
        """Raises UnsafePathError (a MountError) for a uid that cannot name a directory."""
        return self.paths.pod(uid)

    # --- lifecycle ---

    async def connect(self) -> None:
        """Wait for the engine, then set up the network and sandbox image; retries until done."""
        delay = 0.2
        while True:
            try:
                version = await self.executor.call(_version)
                self.engine_version = str(version.get("Version", ""))
                await self._ensure_network()
                self.infra_image = await self.images.ensure_pause_image(
                    self.config.infra_image, pull_timeout=self.config.infra_pull_timeout
                )
                self.connected.set()
                return
            except RuntimeUnavailableError as e:
                log.warning("Docker engine not available (%s); retrying in %.1fs", e, delay)
                self.executor.reset_client()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _ensure_network(self) -> None:
        import ipaddress

        name = self.config.network_name

        def find(client: docker.APIClient) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = client.networks(names=[name])
            return [n for n in result if n.get("Name") == name]

        def create(client: docker.APIClient) -> None:
            subnet = ipaddress.IPv4Network(self.config.pod_cidr)
            gateway = str(next(subnet.hosts()))
            pool = docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)
            client.create_network(
                name,
                driver="bridge",
                ipam=docker.types.IPAMConfig(pool_configs=[pool]),
                labels={naming.NODE: self.config.node_name, "io.minikubelet.network": "pods"},
            )

        found = await self.executor.call(find)
        if not found:
            # ConflictError: created concurrently by another agent on this engine
            with contextlib.suppress(ConflictError):
                await self.executor.call(create)
            found = await self.executor.call(find)
        data = await self.executor.call(lambda c: c.inspect_network(found[0]["Id"]))
        configs = (data.get("IPAM") or {}).get("Config") or []
        ipv4 = [c for c in configs if c.get("Subnet") and ":" not in c["Subnet"]]
        if not ipv4:
            raise SandboxError(f"network {name} has no IPv4 subnet")
        subnet = ipaddress.IPv4Network(ipv4[0]["Subnet"])
        gateway = ipaddress.IPv4Address(ipv4[0].get("Gateway") or str(next(subnet.hosts())))
        if str(subnet) != str(ipaddress.IPv4Network(self.config.pod_cidr)):
            log.warning(
                "network %s exists with subnet %s (configured %s); using it",
                name,
                subnet,
                self.config.pod_cidr,
            )
        if self.ipam is None or self.ipam.network.subnet != subnet:
            self.ipam = IPAllocator(PodNetwork(name, subnet, gateway))
        self._network_id = found[0]["Id"]

    async def _reserve_foreign_addresses(self) -> None:
        """Keep addresses held by containers not ours (another agent, a manual
        ``docker run --network``) away from our pods."""
        if self.ipam is None or not self._network_id:
            return
        data = await self.executor.call(lambda c: c.inspect_network(self._network_id))
        self.ipam.release_foreign()
        for cid, endpoint in (data.get("Containers") or {}).items():
            address = str(endpoint.get("IPv4Address") or "").split("/")[0]
            record = self.cache.get(cid)
            if address and (record is None or not record.is_sandbox):
                self.ipam.reserve(PodUID(f"{FOREIGN}{cid}"), address)

    def start_events(self) -> None:
        loop = asyncio.get_running_loop()
        self._stream = EventStream(
            self.executor,
            filters={
                "type": ["container"],
                "label": [self.node_label],
                "event": list(EVENT_ACTIONS),
            },
            loop=loop,
            on_event=self._on_event,
            on_connected=self._on_stream_connected,
            on_disconnected=self._on_stream_disconnected,
        )
        self._stream.start()
        self._spawn(self._relist_periodically())
        if self._network_id:
            # Network events carry the network's labels, not the container's,
            # so they need a stream of their own, filtered by our network.
            self._network_stream = EventStream(
                self.executor,
                filters={
                    "type": ["network"],
                    "network": [self._network_id],
                    "event": ["disconnect"],
                },
                loop=loop,
                on_event=self._on_network_event,
                on_connected=lambda: None,
                on_disconnected=lambda reason: None,
                name="docker-network-events",
            )
            self._network_stream.start()

    def events_alive(self) -> bool:
        """False if an event stream's thread died: the agent would no longer see deaths."""
        return all(s.alive for s in (self._stream, self._network_stream) if s is not None)

    def _on_network_event(self, event: dict[str, Any]) -> None:
        cid = ((event.get("Actor") or {}).get("Attributes") or {}).get("container", "")
        self._endpoint_released(cid)
        record = self.cache.get(cid)
        if record is not None and record.is_sandbox and record.running:
            log.info("pod %s lost its network", record.pod_name)
            self.cache.update(cid, network_lost=True)

    async def close(self) -> None:
        for stream in (self._stream, self._network_stream):
            if stream is not None:
                stream.stop()
                await asyncio.to_thread(stream.join, 2.0)
        for task in list(self._background):
            task.cancel()
        if self._relisting is not None:
            self._relisting.cancel()
        self._exec_executor.shutdown()

    async def exec_in(
        self, container_id: str, command: Sequence[str], *, timeout: float | None
    ) -> tuple[int, bytes]:
        """Run a command in a container; (exit code, combined output, cut to a limit).

        The timeout counts from when the command starts, not from a wait for a
        free exec thread. Past it the command is killed, as containerd's
        ExecSync does, and TimeoutError raised: Docker has no call to stop an
        exec, and one left running would hold its thread until it ended, so a
        few hanging probes could starve every other pod's exec probes. A caller
        that gives up (cancels) kills the command the same way. Only the
        blocking start runs on the exec pool; the quick create and inspect
        calls use the main one, so a full exec pool cannot delay a kill.
        """
        exec_id = await self.executor.call(_exec_create, container_id, list(command))
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
                    await self._kill_exec(exec_id, began.result())
                    raise TimeoutError
            return await task
        except asyncio.CancelledError:
            # A command not yet started never will be; one running is killed.
            task.cancel()
            task.add_done_callback(_retrieve)
            if began.done():
                kill = asyncio.ensure_future(self._kill_exec(exec_id, began.result()))
                self._background.add(kill)
                kill.add_done_callback(self._background.discard)
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(kill)
            raise

    async def _kill_exec(self, exec_id: str, not_before: int) -> None:
        if not self._local_engine:
            return  # the process is on another host: it runs on, holding one thread
        try:
            killed = await self.executor.call(_kill_exec_process, exec_id, not_before)
        except MinikubeletError as e:
            log.debug("exec %s: cannot kill: %s", exec_id[:12], e)
            return
        if not killed:
            log.info(
                "exec %s outlived its timeout but its process is gone or not its own", exec_id[:12]
            )

    def is_stale(self) -> bool:
        return self.cache.stale

    async def ping(self, timeout: float = 2.0) -> bool:
        try:
            return await asyncio.wait_for(self.executor.call(_ping), timeout)
        except (TimeoutError, MinikubeletError):
            return False

    # --- the cache: relist and events ---

    async def relist(self) -> None:
        """Bring the cache up to the engine: list ours, inspect what is new or changed.

        Merged, not replaced: events and the agent's own calls keep the cache
        current while the list is in flight, and what they report is newer.
        """
        with self.cache.observing() as mark:
            summaries = await self.executor.call(_list_ours, self.node_label)
            listed = {s["Id"] for s in summaries}
            to_inspect = [
                s["Id"]
                for s in summaries
                if (known := self.cache.get(s["Id"])) is None
                or known.state is not _state_of(s.get("State", ""))
            ]
            results = await asyncio.gather(
                *(self.executor.call(_inspect, cid) for cid in to_inspect), return_exceptions=True
            )
            records: list[ContainerRecord] = []
            for cid, result in zip(to_inspect, results, strict=True):
                if isinstance(result, NotFoundError):
                    listed.discard(cid)  # removed between list and inspect
                    continue
                if isinstance(result, BaseException):
                    raise result
                record = record_from_inspect(result, self._image_id_for, paths=self.paths)
                if record is not None:
                    records.append(record)
            self.cache.finish_relist(mark, listed=listed, records=records)
        if self.ipam is not None:
            for record in self.cache.records():
                ip = record.label(naming.POD_IP)
                if record.is_sandbox and ip:
                    self.ipam.reserve(record.pod_uid, ip)
            await self._reserve_foreign_addresses()

    def _image_id_for(self, image: str) -> str:
        info = self.images.cached(image)
        return info.status_id if info is not None else ""

    def _on_stream_connected(self) -> None:
        # The cache stays stale until a relist begun from now on has caught up.
        self.stream_up = True
        self.cache.events_resumed()
        log.info("Docker event stream connected")
        self._request_relist()

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
            if not (self.cache.stale and self.stream_up):
                return
            attempt = 0

    async def _relist_periodically(self) -> None:
        while True:
            await asyncio.sleep(RELIST_PERIOD)
            self._request_relist()

    def _on_stream_disconnected(self, reason: str) -> None:
        if self.stream_up:
            log.warning("Docker event stream lost (%s); reconnecting", reason)
        self.stream_up = False
        self.cache.events_lost()

    def _on_event(self, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status") or ""
        actor = event.get("Actor") or {}
        cid = actor.get("ID") or event.get("id") or ""
        attributes = actor.get("Attributes") or {}
        at = (event.get("timeNano") or 0) / 1e9 or self._clock()
        if action == "start":
            if self.cache.get(cid) is None:
                self._spawn(self._adopt(cid))
            else:
                self.cache.started(cid, at)
        elif action == "die":
            exit_code = int(attributes.get("exitCode", "-1") or -1)
            record = self.cache.died(cid, at=at, exit_code=exit_code)
            if cid in self._removing:
                # Exit details of a container we are deleting would be read by no
                # one, and an inspect would compete with the removals.
                pass
            elif record is None and self.cache.get(cid) is None:
                self._spawn(self._adopt(cid))
            elif record is not None:
                self._spawn(self._refine_exit(record))
        elif action == "oom":
            self.cache.oom(cid)
        elif action == "destroy":
            self._endpoint_released(cid)  # a destroyed container holds no endpoint
            self._removing.discard(cid)
            self.cache.remove(cid)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _adopt(self, cid: str) -> None:
        with self.cache.observing() as mark:
            try:
                data = await self.executor.call(_inspect, cid)
            except MinikubeletError:
                return
            record = record_from_inspect(data, self._image_id_for, paths=self.paths)
            if record is not None:
                # A destroy handled meanwhile must not bring it back.
                self.cache.put_observed(mark, record)

    async def _refine_exit(self, record: ContainerRecord) -> None:
        """Exact exit details (times, OOM, start error) and the termination message."""
        changes: dict[str, Any] = {}
        try:
            data = await self.executor.call(_inspect, record.id)
        except MinikubeletError:
            data = None
        if data is not None:
            state = data.get("State") or {}
            changes.update(
                started_at=parse_docker_time(state.get("StartedAt")) or record.started_at,
                finished_at=parse_docker_time(state.get("FinishedAt")) or record.finished_at,
                oom_killed=bool(state.get("OOMKilled")) or record.oom_killed,
                error=state.get("Error") or "",
            )
        message = termination_message(self.paths, record.labels)
        if (
            not message
            and record.exit_code not in (0, None)
            and record.label(naming.TERMINATION_MESSAGE_POLICY) == "FallbackToLogsOnError"
        ):
            try:
                tail = await self.executor.call(_logs_tail, record.id, FALLBACK_LOG_LINES)
                message = tail[-FALLBACK_LOG_BYTES:].decode("utf-8", errors="replace")
            except MinikubeletError:
                message = ""
        if message:
            changes["message"] = message
        if changes:
            self.cache.update(record.id, **changes)

    # --- engine calls that keep the cache current ---

    async def _create_checked(self, name: str, body: dict[str, Any]) -> str:
        """Create, settling a name clash with a leftover of an interrupted start."""
        try:
            return await self.executor.call(_create, body, name)
        except ConflictError:
            pass
        try:
            data = await self.executor.call(_inspect, name)
        except NotFoundError:
            return await self.executor.call(_create, body, name)
        record = record_from_inspect(data, self._image_id_for, paths=self.paths)
        if (data.get("State") or {}).get("Running"):
            # The cache missed a live container: take it in and let the worker look again.
            if record is not None:
                self.cache.put(record)
            raise CreateContainerError(f"container {name} already exists and is running")
        await self.executor.call(_remove, data["Id"])
        self.cache.remove(data["Id"])
        return await self.executor.call(_create, body, name)

    async def _start_container(self, cid: str) -> None:
        await self.executor.call(_start, cid)
        self.cache.started(cid, self._clock())

    async def remove_container(self, cid: str) -> None:
        self._removing.add(cid)
        # Normally the destroy event clears it; this bounds the set if none comes.
        asyncio.get_running_loop().call_later(REMOVING_TTL, self._removing.discard, cid)
        with contextlib.suppress(NotFoundError):
            await self.executor.call(_remove, cid)
        self.cache.remove(cid)

    async def stop_container(self, record: ContainerRecord, *, timeout: int) -> None:
        """Stop with the image's stop signal, SIGKILL after ``timeout`` seconds."""
        if not record.running:
            return
        # A stop with a grace blocks its thread for up to that long: slow lane.
        call = self.executor.call_slow if timeout > 0 else self.executor.call
        try:
            await call(_stop, record.id, timeout)
        except NotFoundError:
            self.cache.remove(record.id)

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
        pod_dir = self.pod_directory(pod.uid)
        if pod.spec.host_network:
            pod_ip = ""
        else:
            assert self.ipam is not None
            pod_ip = self.ipam.allocate(pod.uid)
        volume_paths = prepare_volumes(pod, pod_dir, node_memory=self._node.memory)
        hosts_path = self._write_hosts(pod, pod_dir, pod_ip)
        params = SandboxParams(
            pod=pod,
            node_name=self.config.node_name,
            image=self.infra_image,
            network=self.config.network_name,
            pod_ip=pod_ip,
            attempt=attempt,
            start_time=start_time,
            host_dns=self._host_dns,
            oom_score_adj=SANDBOX_OOM_SCORE_ADJ if self.config.lower_oom_scores else None,
        )
        name, body = sandbox_create_body(params)
        try:
            cid = await self._create_checked(name, body)
        except MinikubeletError as e:
            raise SandboxError(f"Failed to create pod sandbox: {e}") from e
        self.cache.put(self._sandbox_record(cid, params, body["Labels"]))
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
        pod_dir = self.pod_directory(pod.uid)
        pod_ip = sandbox.label(naming.POD_IP)
        if pod_ip and self.ipam is not None:
            self.ipam.reserve(pod.uid, pod_ip)
        volume_paths = prepare_volumes(pod, pod_dir, node_memory=self._node.memory)
        hosts_path = (
            pod_dir.hosts_path
            if pod_dir.hosts_path.exists()
            else self._write_hosts(pod, pod_dir, pod_ip)
        )
        return PodContext(pod, sandbox.id, pod_ip, pod_dir, volume_paths, hosts_path)

    def _endpoint_released(self, cid: str) -> None:
        released = self._release_waiters.get(cid)
        if released is not None:
            released.set()

    async def _await_address_released(self, ctx: PodContext) -> None:
        """Wait until no previous sandbox of the pod holds the pod's address.

        A pod keeps its IP across sandbox re-creation, and the worker
        re-creates at the previous sandbox's "die" event; Docker releases that
        sandbox's endpoint only after emitting it, so a start right away can
        find the address still taken. Only a pod with a previous sandbox on
        the same address pays for the network inspect.
        """
        previous = [
            r.id
            for r in self.cache.pod_state(ctx.pod.uid).sandboxes
            if r.id != ctx.sandbox_id and r.label(naming.POD_IP) == ctx.pod_ip
        ]
        if not ctx.pod_ip or not previous or not self._network_id:
            return
        # Listening before asking the engine, so a release in between is not missed.
        waiters = {cid: self._release_waiters.setdefault(cid, asyncio.Event()) for cid in previous}
        try:
            data = await self.executor.call(_inspect_network, self._network_id)
            holders = [
                waiters[cid]
                for cid, endpoint in (data.get("Containers") or {}).items()
                if cid in waiters
                and str(endpoint.get("IPv4Address") or "").split("/")[0] == ctx.pod_ip
            ]
            if holders:
                log.info(
                    "pod %s: waiting for its previous sandbox to release %s",
                    ctx.pod.key,
                    ctx.pod_ip,
                )
                async with asyncio.timeout(ADDRESS_RELEASE_TIMEOUT):
                    for released in holders:
                        await released.wait()
        except MinikubeletError as e:
            log.warning("pod %s: cannot tell who holds %s: %s", ctx.pod.key, ctx.pod_ip, e)
        except TimeoutError:
            log.warning(
                "pod %s: %s not released within %.0fs; starting anyway",
                ctx.pod.key,
                ctx.pod_ip,
                ADDRESS_RELEASE_TIMEOUT,
            )
        finally:
            for cid in previous:
                self._release_waiters.pop(cid, None)

    async def start_sandbox(self, ctx: PodContext) -> None:
        await self._await_address_released(ctx)
        try:
            await self._start_container(ctx.sandbox_id)
        except MinikubeletError as e:
            if ctx.pod_ip and self.ipam is not None and "already in use" in str(e):
                # Someone else holds this address: keep it away from us and pick another.
                self.ipam.release(ctx.pod.uid)
                self.ipam.reserve(PodUID(f"{FOREIGN}{ctx.pod_ip}"), ctx.pod_ip)
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
            node_name=self.config.node_name,
            sandbox_id=ctx.sandbox_id,
            restart_count=start.restart_count,
            pod_ip=self.config.host_ip if pod.spec.host_network else ctx.pod_ip,
            host_ip=self.config.host_ip,
            mounts=mounts,
            termination_log=str(term_log),
            image_user=info.user,
            node=self._node,
            oom_score_adj=CONTAINER_OOM_SCORE_ADJ if self.config.lower_oom_scores else None,
            backoff_delay=start.backoff.delay if start.backoff is not None else None,
        )
        name, body = container_create_body(params)
        try:
            cid = await self._create_checked(name, body)
        except ImageNotFoundError:
            # The image went away since we cached it: check again, once.
            self.images.forget(container.image)
            info = await self._ensure_image(pod, container)
            cid = await self._create_checked(name, body)
        except MinikubeletError as e:
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
        self.cache.put(record)
        self._events(
            pod,
            EventType.NORMAL,
            "Created",
            f"Created container: {container.name}",
            field_path=_field(pod, container),
        )
        return cid

    async def _ensure_image(self, pod: Pod, container: Container) -> ImageInfo:
        field_path = _field(pod, container)
        try:
            info, pulled = await self.images.ensure(container.image, container.image_pull_policy)
        except MinikubeletError as e:
            self._events(pod, EventType.WARNING, "Failed", str(e), field_path=field_path)
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
            self._events(
                pod,
                EventType.NORMAL,
                "Pulled",
                f'Successfully pulled image "{container.image}"',
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
                field_path=_field(ctx.pod, container),
            )
            raise RunContainerError(str(e)) from e
        self._events(
            ctx.pod,
            EventType.NORMAL,
            "Started",
            f"Started container {container.name}",
            field_path=_field(ctx.pod, container),
        )

    async def start_pod(
        self,
        pod: Pod,
        *,
        attempt: int,
        starts: Sequence[StartContainer],
        start_time: float,
        post_start: Callable[[PodContext, Container, str], Any] | None = None,
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
        post_start: Callable[[PodContext, Container, str], Any] | None = None,
    ) -> dict[str, MinikubeletError]:
        """Create and start containers in a running sandbox."""
        creates = [asyncio.ensure_future(self.create_container(ctx, s)) for s in starts]
        return await self._start_in_order(ctx, starts, creates, post_start)

    async def _start_in_order(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        creates: Sequence[asyncio.Future[str]],
        post_start: Callable[[PodContext, Container, str], Any] | None,
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
        state = self.cache.pod_state(uid)
        for record in state.containers:
            await self.remove_container(record.id)
        for record in state.sandboxes:
            await self.remove_container(record.id)
        if self.ipam is not None:
            self.ipam.release(uid)
        if keep_dir:
            return
        try:
            pod_dir = self.pod_directory(uid)
        except UnsafePathError as e:
            log.error("pod %s: not removing its directory: %s", uid, e)
            return
        if not await asyncio.to_thread(pod_dir.remove):
            log.error("pod %s: its directory %s was not entirely removed", uid, pod_dir.root)

    def host_files_exist(self, uid: str) -> bool:
        try:
            return os.path.isdir(self.pod_directory(uid).root)
        except UnsafePathError:
            return False


def _field(pod: Pod, container: Container) -> str:
    section = (
        "initContainers"
        if any(c.name == container.name for c in pod.spec.init_containers)
        else "containers"
    )
    return f"spec.{section}{{{container.name}}}"
