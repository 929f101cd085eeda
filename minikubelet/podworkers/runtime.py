"""What pod workers use of a container runtime: the seam between deciding and doing.

``DockerRuntime`` is the implementation; the unit tests pass one of their own,
in memory over a real ``RuntimeCache``, so the whole loop runs without Docker.
Nothing here may grow beyond what the workers call: a method added to the
Docker runtime is not a method every runtime must have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerRecord
from minikubelet.errors import MinikubeletError
from minikubelet.model.spec import Container, Pod, PodUID
from minikubelet.prober.handlers import Executor
from minikubelet.runtime.actions import StartContainer
from minikubelet.runtime.pods import PodContext
from minikubelet.runtime.volumes import PodDirectory

# Runs a container's postStart hook once it has started; the next container waits for it.
PostStart = Callable[[PodContext, Container, str], Awaitable[None]]


class PodRuntime(Executor, Protocol):
    """Pods and containers on an engine; ``exec_in`` (from Executor) runs hooks and probes."""

    @property
    def cache(self) -> RuntimeCache:
        """What runs, kept current by the runtime; workers read it and listen to it."""
        ...

    def pod_directory(self, uid: str) -> PodDirectory: ...

    async def start_pod(
        self,
        pod: Pod,
        *,
        attempt: int,
        starts: Sequence[StartContainer],
        start_time: float,
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]:
        """A new sandbox with the given containers; their start errors by name.

        Raises SandboxError or MountError when the sandbox itself failed.
        """
        ...

    def context_for(self, pod: Pod, sandbox: ContainerRecord) -> PodContext:
        """What containers of a pod whose sandbox runs are created against."""
        ...

    async def start_containers(
        self,
        ctx: PodContext,
        starts: Sequence[StartContainer],
        post_start: PostStart | None = None,
    ) -> dict[str, MinikubeletError]: ...

    async def stop_container(self, record: ContainerRecord, *, timeout: int) -> None:
        """The stop signal, then SIGKILL after ``timeout`` seconds (0: at once)."""
        ...

    async def remove_container(self, cid: str) -> None: ...

    async def remove_pod(self, uid: PodUID) -> None:
        """Force-remove every container of the pod, then its host files."""
        ...
