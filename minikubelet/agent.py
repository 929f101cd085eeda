"""The agent's lifecycle: build the parts, run them, stop them in order.

Start-up order matters for "never touch a healthy pod": the runtime cache is
filled from Docker (adoption) before any source is read, so the first
decision about every pod is made knowing what already runs. Shutdown is
bounded and ordered: stop serving, stop the sources, stop the workers (pods
keep running unless asked), stop the event stream, release the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from minikubelet import __version__
from minikubelet.config.file import FileSource
from minikubelet.config.merge import PodConfig
from minikubelet.config.source import SeenTimes, SourceSnapshot
from minikubelet.config.strict import directory_insecurity, trusted_uids
from minikubelet.container.cache import RuntimeCache
from minikubelet.errors import ConfigError
from minikubelet.events import EventRecorder, EventType, ObjectRef
from minikubelet.health import Health, always_ok
from minikubelet.logconfig import AgentLogging
from minikubelet.metrics import Metrics
from minikubelet.model import naming
from minikubelet.model.spec import Pod
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.nodestatus.readings import read_host_facts
from minikubelet.nodestatus.setters import NodeIdentity
from minikubelet.podworkers import PodWorkers, WorkerSettings, pod_ref
from minikubelet.runtime.docker import DockerRuntime, RuntimeConfig
from minikubelet.runtime.dockerspec import NodeResources
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.owner import claim_node
from minikubelet.server.serve import ServerDeps, serve
from minikubelet.server.tls import server_tls_context
from minikubelet.settings import Settings, changed_fields, config_key
from minikubelet.status.manager import StatusManager
from minikubelet.supervisor import AgentFailure, Supervisor
from minikubelet.systemd import Notifier, Watchdog, report_status, watchdog_period
from minikubelet.util.host import (
    CAP_SYS_RESOURCE,
    detect_host_ip,
    has_capability,
    node_cpu_milli,
    node_memory_bytes,
    raise_open_file_limit,
)
from minikubelet.util.statedir import StateDirLock, prepare_state_dir, state_dir_in_use
from minikubelet.util.timefmt import rfc3339_nano_local

if TYPE_CHECKING:
    from minikubelet.cluster.reporter import ClusterReporter

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 1.5
# How often parts without a task of their own (a thread, the listening socket) are checked.
PART_CHECK_PERIOD = 1.0
# The kubelet's housekeeping runs every 2 s; what is left to do here is slow-moving.
HOUSEKEEPING_PERIOD = 30.0
# The checks that say the agent itself works (not the engine, not the manifest
# directory): while one fails, systemd's watchdog is not petted and systemd
# restarts the agent. An engine that is down is no reason to restart the agent.
LIVENESS_CHECKS = ["syncloop"]
# Housekeeping that has not come round in this long is stuck (on a hung
# filesystem, say): the syncloop check fails, and the watchdog stops petting.
HOUSEKEEPING_STALL = 4 * HOUSEKEEPING_PERIOD
# What SIGHUP can change in a running agent; any other change needs a restart.
RELOADABLE = ("log_level", "log_format", "file_check_frequency")


def housekeeping_stalled(last: float, now: float, limit: float = HOUSEKEEPING_STALL) -> str | None:
    """Why the sync loop looks wedged (its housekeeping pass overdue), or None."""
    if now - last > limit:
        return f"housekeeping has not come round in {now - last:.0f}s"
    return None


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _serving(runner: web.AppRunner) -> bool:
    # aiohttp exposes no public "is listening"; its sites keep the asyncio.Server.
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and hasattr(server, "is_serving") and not server.is_serving():
            return False
    return bool(runner.sites)


class Agent:
    def __init__(
        self,
        settings: Settings,
        *,
        reload: Callable[[], Settings] | None = None,
        logs: AgentLogging | None = None,
    ) -> None:
        self.settings = settings
        # Reads the settings again (config file + the same flags) on SIGHUP.
        self._reload_settings = reload
        self._logs = logs
        self._reloading: asyncio.Task[None] | None = None
        # Loop time at which housekeeping last began a pass (the syncloop heartbeat).
        self._housekeeping_at: float | None = None
        self.node_name = settings.node_name
        self.host_ip = settings.node_ip or detect_host_ip()
        self.recorder = EventRecorder(host=self.node_name, clock=time.time)
        self.status = StatusManager()
        self.cache = RuntimeCache()
        self.executor = DockerExecutor(settings.docker_host or None)
        self.runtime = DockerRuntime(
            RuntimeConfig(
                node_name=self.node_name,
                state_dir=settings.state_dir,
                network_name=settings.network_name,
                pod_cidr=settings.pod_cidr,
                infra_image=settings.pod_infra_image,
                host_ip=self.host_ip,
                infra_pull_timeout=settings.infra_pull_timeout,
                lower_oom_scores=has_capability(CAP_SYS_RESOURCE),
            ),
            self.executor,
            cache=self.cache,
            events=self._pod_event,
            node=NodeResources(cpu_milli=node_cpu_milli(), memory=node_memory_bytes()),
        )
        self.metrics = Metrics()
        self.metrics.watch_runtime(self.runtime.cache.records)
        self.workers = PodWorkers(
            self.runtime,
            self.status,
            self.recorder,
            settings=WorkerSettings(host_ip=self.host_ip),
            clock=time.time,
            metrics=self.metrics,
        )
        if not self.runtime.config.lower_oom_scores:
            log.warning(
                "no CAP_SYS_RESOURCE: pods run without kubelet's negative OOM score adjustment"
            )
        self.node_ref = ObjectRef(kind="Node", name=self.node_name, uid=self.node_name)
        self.node_status = NodeStatus(
            NodeIdentity(
                name=self.node_name,
                created=time.time(),
                host_ip=self.host_ip,
                port=settings.listen_port,
                kubelet_version=f"v{__version__}",
                pod_cidr=settings.pod_cidr,
            ),
            read_host_facts(),
            recorder=self.recorder,
            node_ref=self.node_ref,
            clock=time.time,
            ready_errors=self._node_errors,
            nodefs=settings.state_dir,
        )
        self.seen = SeenTimes(time.time, rfc3339_nano_local)
        self.config: PodConfig | None = None
        self.source: FileSource | None = None
        self._runner: web.AppRunner | None = None
        # Cluster mode (kubeconfig set): the node, its Lease and mirror pods on an API server.
        self.cluster: ClusterReporter | None = None
        self.supervisor: Supervisor | None = None
        self._state_lock: StateDirLock | None = None
        self.health = Health()
        self.health.add("ping", always_ok)
        self._register_health()
        self.workers.on_fatal = self._worker_supervisor_failed
        self.notifier = Notifier.from_env()
        # Set once every source has delivered its first snapshot: the agent is "ready".
        self._loaded = asyncio.Event()

    def _pod_event(
        self, pod: Pod, type_: EventType, reason: str, message: str, *, field_path: str = ""
    ) -> None:
        self.recorder.record(pod_ref(pod, field_path), type_, reason, message)

    def _node_errors(self) -> list[str]:
        """Why the node is not Ready, in the kubelet's words for its runtime checks."""
        if self.config is None:
            return ["container runtime status check may not have completed yet"]
        if self.runtime.is_stale() or not self.runtime.events_connected():
            return ["container runtime is down"]
        return []

    async def _start_server(self) -> None:
        token = ""
        if self.settings.auth_token_file:
            try:
                token = (
                    await asyncio.to_thread(Path(self.settings.auth_token_file).read_text)
                ).strip()
            except OSError as e:
                raise ConfigError(
                    f"authTokenFile: cannot read {self.settings.auth_token_file}: {e.strerror}"
                ) from None
            if not token:
                raise ConfigError(f"authTokenFile: {self.settings.auth_token_file} is empty")
        deps = ServerDeps(
            status=self.status,
            engine=self.runtime,
            source_errors=lambda: self.config.errors if self.config is not None else [],
            auth_token=token,
            metrics=self.metrics.registry,
            health=self.health,
            recorder=self.recorder,
            node=self.node_status,
            logs=self.runtime,
        )
        self.recorder.record(self.node_ref, EventType.NORMAL, "Starting", "Starting kubelet.")
        try:
            await self.node_status.refresh()
        except OSError as e:
            log.warning("node status: cannot read the host's usage: %s", e)
        tls = None
        if self.settings.tls_cert_file:
            tls = await asyncio.to_thread(
                server_tls_context,
                cert_file=self.settings.tls_cert_file,
                key_file=self.settings.tls_private_key_file,
                client_ca_file=self.settings.client_ca_file,
            )
        self._runner = await serve(
            deps, self.settings.listen_host, self.settings.listen_port, tls=tls
        )
        log.info("serving status on %s://%s", "https" if tls else "http", self.settings.listen)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set. Raises AgentFailure if a part of the agent died."""
        if not self.settings.allow_insecure_manifest_dir:
            # Refused at start, as sshd refuses: later, the source only stops reading it.
            insecure = directory_insecurity(self.settings.manifest_dir, trusted_uids())
            if insecure:
                raise ConfigError(insecure)
        self._state_lock = prepare_state_dir(self.settings.state_dir)
        old, new = raise_open_file_limit()
        if new != old:
            log.info("raised the open-file limit from %d to %d", old, new)
        supervisor = self.supervisor = Supervisor(stop)
        supervisor.install_loop_handler(asyncio.get_running_loop())
        self.notifier.send(STATUS="starting: connecting to the Docker engine")
        try:
            if self.settings.kubeconfig:
                await self._connect_cluster()
            await self._start_server()
            connect = asyncio.ensure_future(self._connect())
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({connect, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if connect not in done:
                connect.cancel()
                await asyncio.gather(connect, return_exceptions=True)
                return
            stopped.cancel()
            connect.result()
            self.notifier.send(STATUS="reading the manifest directory")
            self.source = FileSource(
                self.settings.manifest_dir,
                node_name=self.node_name,
                seen=self.seen,
                sink=self._on_snapshot,
                resync_period=self.settings.file_check_frequency,
                max_bytes=self.settings.max_manifest_bytes,
                strict=not self.settings.allow_insecure_manifest_dir,
            )
            supervisor.spawn("source:file", self.source.run())
            supervisor.spawn("events", self._watch_event_stream())
            supervisor.spawn("server", self._watch_server())
            supervisor.spawn("housekeeping", self._housekeeping())
            if self.notifier.enabled:
                supervisor.spawn("systemd", self._service_manager())
            supervisor.spawn("nodestatus", self.node_status.run())
            if self.cluster is not None:
                for name, part in self.cluster.parts().items():
                    supervisor.spawn(f"cluster:{name}", part)
            log.info(
                "minikubelet running as node %s (host IP %s, manifests in %s)",
                self.node_name,
                self.host_ip,
                self.settings.manifest_dir,
            )
            await stop.wait()
        finally:
            self.notifier.send(STOPPING=1, STATUS="stopping")
            await supervisor.stop()
            await self._shutdown()
            self._state_lock.release()
        if supervisor.failure is not None:
            raise AgentFailure(supervisor.failure)

    async def _connect_cluster(self) -> None:
        # Imported here: the client library costs ~40 MiB and 0.3 s, paid only in cluster mode.
        from minikubelet.cluster.reporter import ClusterReporter

        self.cluster = await ClusterReporter.connect(
            Path(self.settings.kubeconfig),
            state_dir=self.settings.state_dir,
            registry=self.metrics.registry,
            node_name=self.node_name,
            node_status=self.node_status,
            status=self.status,
            recorder=self.recorder,
            node_ref=self.node_ref,
            # Mirrors without a static pod are deleted only once every source was read.
            sources_ready=lambda: self.config is not None and self.config.ready,
        )
        self.health.add("apiserver", self.cluster.health.check)

    async def _watch_event_stream(self) -> None:
        """The event stream lives on a thread; a thread that died is a part that died."""
        while True:
            await asyncio.sleep(PART_CHECK_PERIOD)
            if not self.runtime.events_alive():
                raise RuntimeError("the Docker event stream thread is gone")

    async def _housekeeping(self) -> None:
        """Forget what belongs to pods that are gone: their directories, their first-seen times.

        A pod directory can outlive its pod when the agent stopped during a
        removal. Nothing is done while the engine's view is stale or before
        every source has been seen whole, when a pod could look gone but is not.
        """
        loop = asyncio.get_running_loop()
        while True:
            # A pass that ends, whatever it did, is the heartbeat the syncloop check reads.
            self._housekeeping_at = loop.time()
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            if self.config is None or not self.config.ready or self.cache.stale:
                continue
            keep = set(self.config.desired) | set(self.workers.workers) | self.cache.pod_uids()
            self.seen.forget_except(set(keep))
            try:
                await self.runtime.remove_orphaned_pod_dirs(keep)
            except OSError as e:
                log.warning("cleaning up pod directories failed: %s", e)

    async def _watch_server(self) -> None:
        while True:
            await asyncio.sleep(PART_CHECK_PERIOD)
            if self._runner is None or not _serving(self._runner):
                raise RuntimeError("the status server stopped listening")

    def _register_health(self) -> None:
        async def manifests() -> str | None:
            return self.source.directory_error if self.source is not None else "not started"

        async def events() -> str | None:
            # Until the stream first connects the cache is not marked stale, yet
            # a container's death would go unseen.
            if not self.runtime.events_connected():
                return "not connected to the Docker event stream"
            if self.runtime.is_stale():
                return "the Docker event stream is reconnecting; pod state may be stale"
            return None

        async def syncloop() -> str | None:
            if self.config is None:
                return "waiting for the Docker engine"
            if self._housekeeping_at is not None:
                return housekeeping_stalled(
                    self._housekeeping_at, asyncio.get_running_loop().time()
                )
            return None

        self.health.add("manifests", manifests)
        self.health.add("events", events)
        self.health.add("syncloop", syncloop)

    async def _connect(self) -> None:
        await self.runtime.connect()
        # Before touching any container: another live agent may own this node name.
        await claim_node(
            self.executor,
            node_name=self.node_name,
            state_dir=self.settings.state_dir,
            owner_alive=state_dir_in_use,
        )
        # Adopt what runs before reading any manifest: the first decision about a pod sees it.
        await self.runtime.relist()
        for record in self.cache.records():
            seen = record.label(naming.ANNOTATION_PREFIX + naming.CONFIG_SEEN)
            if record.is_sandbox and seen:
                self.seen.seed(record.pod_uid, seen)
        self.runtime.start_events()
        self.node_status.set_runtime(*await self.runtime.engine_info())
        self.config = PodConfig(
            [FileSource.name],
            sink=self.workers.sync_desired,
            recorder=self.recorder,
            node_ref=self.node_ref,
            running=self.cache.pod_uids(),
        )
        log.info("adopted %d pods from Docker", len(self.cache.pod_uids()))

    def _on_snapshot(self, snapshot: SourceSnapshot) -> None:
        assert self.config is not None
        self.config.update(snapshot)
        self._loaded.set()

    async def _service_manager(self) -> None:
        """READY=1 once the manifests are read (the API serves since before), then
        STATUS= kept current and, when systemd asks for it, the watchdog petted."""
        await self._loaded.wait()
        self.notifier.send(READY=1, STATUS=await self._status_text())
        period = watchdog_period(os.environ, os.getpid())
        async with asyncio.TaskGroup() as group:
            group.create_task(report_status(self.notifier, self._status_text))
            if period is not None:
                watchdog = Watchdog(self.notifier, period=period, alive=self._alive)
                group.create_task(watchdog.run())

    def request_reload(self) -> None:
        """SIGHUP: read the settings again and apply what can change without a restart."""
        if self._reload_settings is None:
            return
        if self._reloading is not None and not self._reloading.done():
            log.info("SIGHUP: a reload is already under way")
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload(), name="reload")

    async def _reload(self) -> None:
        """Never raises: a bad file is reported (a ConfigReloadFailed event) and the
        running settings stay."""
        assert self._reload_settings is not None
        try:
            # The config file is read off the loop: it could be on a slow disk, or a FIFO.
            new = await asyncio.to_thread(self._reload_settings)
        except ConfigError as e:
            log.error("SIGHUP: settings not reloaded: %s", e)
            self.recorder.record(
                self.node_ref,
                EventType.WARNING,
                "ConfigReloadFailed",
                f"settings not reloaded, the running ones stay: {e}",
            )
            return
        except Exception as e:
            log.exception("SIGHUP: settings not reloaded")
            self.recorder.record(
                self.node_ref,
                EventType.WARNING,
                "ConfigReloadFailed",
                f"settings not reloaded: internal error: {type(e).__name__}",
            )
            return
        message = self.apply_settings(new)
        log.info("SIGHUP: %s", message)
        self.recorder.record(self.node_ref, EventType.NORMAL, "ConfigReloaded", message)

    def apply_settings(self, new: Settings) -> str:
        """Apply what can change in a running agent; say what was applied and what
        needs a restart (those keep their running values)."""
        changed = changed_fields(self.settings, new)
        applied = [name for name in changed if name in RELOADABLE]
        pending = [name for name in changed if name not in RELOADABLE]
        kept = {name: getattr(self.settings, name) for name in pending}
        self.settings = replace(new, **kept)
        if self._logs is not None and ({"log_level", "log_format"} & set(applied)):
            self._logs.configure(level=new.log_level, log_format=new.log_format)
        if "file_check_frequency" in applied and self.source is not None:
            self.source.set_resync_period(new.file_check_frequency)

        def shown(names: list[str]) -> str:
            return ", ".join(f"{config_key(n)}={_value(getattr(new, n))}" for n in names)

        parts = [f"applied {shown(applied)}" if applied else "no change to apply"]
        if pending:
            parts.append(f"needs a restart, not applied: {shown(pending)}")
        return "; ".join(parts)

    async def _alive(self) -> str | None:
        for result in await self.health.run(LIVENESS_CHECKS):
            if not result.ok:
                return f"{result.name}: {result.error}"
        return None

    async def _status_text(self) -> str:
        """One line for `systemctl status`: how many pods, how many manifest errors,
        and what is unhealthy, if anything."""
        pods = len(self.config.desired) if self.config is not None else 0
        errors = len(self.config.errors) if self.config is not None else 0
        text = f"{pods} pod{'s' * (pods != 1)}, {errors} manifest error{'s' * (errors != 1)}"
        failed = [f"{r.name}: {r.error}" for r in await self.health.run() if not r.ok]
        return f"{text}; unhealthy: {'; '.join(failed)}" if failed else text

    def _worker_supervisor_failed(self, reason: str, error: BaseException | None) -> None:
        if self.supervisor is not None:
            self.supervisor.fail(reason, error)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        try:
            await asyncio.wait_for(
                self.workers.shutdown(stop_pods=self.settings.stop_pods_on_exit),
                None if self.settings.stop_pods_on_exit else SHUTDOWN_TIMEOUT,
            )
        except TimeoutError:
            log.warning("pod workers did not stop in %.1fs", SHUTDOWN_TIMEOUT)
        if self.cluster is not None:
            await self.cluster.close()
        await self.runtime.close()
        self.executor.shutdown()
        self.notifier.close()
        log.info("minikubelet stopped")
