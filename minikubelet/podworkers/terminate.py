"""Stopping containers and pods: preStop, grace periods, the kill order.

How the kubelet's killContainer and killPod stop things (kuberuntime_container.go):
a container's preStop hook runs first, within the grace period; the stop
signal follows with what is left of the grace, but never less than
``MIN_STOP_WINDOW``; SIGKILL at its end. A pod's app containers stop
together, then its sidecars one by one in reverse order, then its sandboxes.

A pod no source has any more (found on Docker after a restart) has no spec:
its preStop hooks come from the labels its containers were made with, and it
gets the kubelet's grace override for such pods, 1 s (preStop within it, then
the 2 s stop window as always). *When* a pod is terminated is the workers'
business (workers.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from minikubelet.container.refs import container_field_path
from minikubelet.container.state import ContainerRecord, PodRuntimeState
from minikubelet.events import EventType
from minikubelet.lifecycle import HookError, HookRunner, HookTarget
from minikubelet.model import naming
from minikubelet.model.spec import Handler, Pod, PodUID
from minikubelet.podworkers.runtime import PodRuntime
from minikubelet.runtime import labels
from minikubelet.runtime.pods import PodEventSink

log = logging.getLogger(__name__)

# After a preStop hook, a container still gets at least this long to stop (kubelet: 2 s).
MIN_STOP_WINDOW = 2
# The kubelet kills pods no source has with gracePeriodOverride = 1 (HandlePodCleanups).
ORPHAN_GRACE = 1
# killPodNow's patience: the grace period and half again, at least this many seconds;
# a pod still being stopped then is reported (ExceededGracePeriod), not abandoned.
KILL_TIMEOUT_MIN = 10


class _Timer(Protocol):
    def cancel(self) -> None: ...


class Terminator:
    def __init__(
        self,
        runtime: PodRuntime,
        hooks: HookRunner,
        *,
        clock: Callable[[], float],
        event: PodEventSink,
        call_at: Callable[[float, Callable[[], None]], _Timer] | None = None,
    ) -> None:
        """``call_at`` calls back once ``clock`` reads a time (default: an event-loop timer)."""
        self.runtime = runtime
        self.hooks = hooks
        self.clock = clock
        self.event = event
        self.call_at = call_at or self._loop_call_at

    def _loop_call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        return asyncio.get_running_loop().call_later(max(0.0, when - self.clock()), callback)

    async def terminate_pod(self, uid: PodUID, pod: Pod | None) -> None:
        """Stop a pod within its grace period and remove its containers and files.

        ``pod`` is None for a pod no source has: it is stopped from its labels.
        """
        state = self.runtime.cache.pod_state(uid)
        grace = _grace(pod, state)
        overdue = self.call_at(
            self.clock() + max(grace + grace // 2, KILL_TIMEOUT_MIN), lambda: self._overdue(pod)
        )
        try:
            if grace > 0:
                await self.kill_running(pod, state, grace=grace)
            # Grace 0 (or all stopped): a forced remove is one call per container.
            await self.runtime.remove_pod(uid)
        finally:
            overdue.cancel()
        log.info("pod %s terminated", pod.key if pod is not None else uid)

    def _overdue(self, pod: Pod | None) -> None:
        if pod is not None:
            self.event(
                pod,
                EventType.WARNING,
                "ExceededGracePeriod",
                "Container runtime did not kill the pod within specified grace period.",
            )
        log.warning("pod %s: still stopping past its grace period", pod.key if pod else "?")

    async def kill_running(self, pod: Pod | None, state: PodRuntimeState, *, grace: int) -> None:
        """Stop a pod's running containers: apps together, sidecars in reverse, then sandboxes.

        Everything shares one deadline, so the pod takes no longer than its grace
        period (plus the minimum stop window for sidecars still running then).
        """
        deadline = self.clock() + grace
        sidecars = (
            [c.name for c in pod.spec.init_containers if c.is_sidecar] if pod is not None else []
        )
        apps = [r for r in state.containers if r.running and r.name not in sidecars]
        await asyncio.gather(*(self._stop(pod, r, grace) for r in apps))
        for name in reversed(sidecars):
            for record in state.instances(name):
                if record.running:
                    remaining = max(int(deadline - self.clock()), MIN_STOP_WINDOW)
                    await self._stop(pod, record, min(grace, remaining))
        for sandbox in state.sandboxes:
            if sandbox.running:
                await self.runtime.stop_container(sandbox, timeout=0)

    async def _stop(self, pod: Pod | None, record: ContainerRecord, grace: int) -> None:
        if pod is not None:
            self.event(
                pod,
                EventType.NORMAL,
                "Killing",
                f"Stopping container {record.name}",
                field_path=container_field_path(pod, record.name),
            )
        await self.stop_container(pod, record, grace)

    async def stop_container(self, pod: Pod | None, record: ContainerRecord, grace: int) -> None:
        """preStop (within the grace period), then the stop signal, SIGKILL at the deadline.

        Whole seconds the hook used come off the grace period; what is left is
        at least ``MIN_STOP_WINDOW``, as on the kubelet. Grace 0 skips the hook
        and kills at once (a deliberate difference, see the README).
        """
        if not record.running:
            return
        started = self.clock()
        handler = _pre_stop_handler(pod, record) if grace > 0 else None
        if handler is not None:
            target = self._hook_target(pod, record)
            try:
                await self.hooks.run("PreStop", handler, target, timeout=grace)
            except HookError as e:
                # The event does not carry the hook's output, which may hold secrets.
                log.warning("preStop hook of %s failed: %s", record.name, e)
                if pod is not None:
                    field_path = container_field_path(pod, record.name)
                    self.event(
                        pod,
                        EventType.WARNING,
                        "FailedPreStopHook",
                        "PreStopHook failed",
                        field_path=field_path,
                    )
        timeout = max(grace - int(self.clock() - started), MIN_STOP_WINDOW) if grace > 0 else 0
        await self.runtime.stop_container(record, timeout=timeout)

    def _hook_target(self, pod: Pod | None, record: ContainerRecord) -> HookTarget:
        sandbox = self.runtime.cache.get(record.label(naming.SANDBOX_ID))
        pod_ip = sandbox.label(naming.POD_IP) if sandbox is not None else ""
        container = pod.spec.container(record.name) if pod is not None else None
        if pod is not None and container is not None:
            return HookTarget.of(pod, container, record.id, pod_ip)
        return HookTarget(
            record.label(naming.POD_NAME),
            record.name,
            record.id,
            pod_ip,
            labels.named_ports(record),
        )


def _pre_stop_handler(pod: Pod | None, record: ContainerRecord) -> Handler | None:
    """The spec's preStop hook, or for a pod no source has any more, the one in the labels."""
    container = pod.spec.container(record.name) if pod is not None else None
    if container is not None:
        return container.lifecycle.pre_stop
    return labels.pre_stop_handler(record)


def _grace(pod: Pod | None, state: PodRuntimeState) -> int:
    if pod is not None:
        return pod.spec.termination_grace_period_seconds
    # A pod that asked for 0 is still killed at once (grace 0, see the README):
    # the override shortens a grace, it never lengthens one.
    recorded = labels.grace_period(state)
    return ORPHAN_GRACE if recorded is None else min(recorded, ORPHAN_GRACE)
