"""Cluster mode's parts, built from the agent's own and run together.

Each part owns its requests and its retries; a part that raises is a part that
died, and takes the agent down (the supervisor), as any other part would. An
API server that is down is *not* a reason to raise: the parts wait and retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.config import ConfigException
from prometheus_client import CollectorRegistry

from minikubelet.cluster.api import KubeApi
from minikubelet.cluster.health import ApiHealth
from minikubelet.cluster.mirror import MirrorPods
from minikubelet.cluster.node import LeaseRenewer, NodeContext, NodeReporter
from minikubelet.errors import ConfigError
from minikubelet.events import EventRecorder, ObjectRef
from minikubelet.nodestatus.manager import NodeStatus
from minikubelet.status.manager import StatusManager

log = logging.getLogger(__name__)

# Under the state directory: the kubeconfig's certificate and key *data*, as the
# files the TLS context loads them from. Private to root, like the state directory.
CREDENTIALS_DIR = "kubeconfig"


def clear_credentials(directory: Path) -> None:
    """Remove the key files an earlier run left (the library removes its own only at
    a clean exit). Only regular files directly in ``directory``, which the agent
    made: a symlink is unlinked, never followed."""
    for entry in directory.iterdir():
        if entry.is_symlink() or entry.is_file():
            entry.unlink(missing_ok=True)


class NodeUid:
    """The Node's uid on the server, once registered: mirror pods and the Lease
    name it in their owner reference. It changes if the Node is deleted and
    registered again."""

    def __init__(self) -> None:
        self.value: str | None = None
        self._known = asyncio.Event()

    def set(self, uid: str) -> None:
        self.value = uid
        self._known.set()

    async def wait(self) -> str:
        await self._known.wait()
        assert self.value is not None
        return self.value


class ClusterReporter:
    def __init__(
        self,
        api: KubeApi,
        *,
        node_name: str,
        node_status: NodeStatus,
        status: StatusManager,
        recorder: EventRecorder,
        node_ref: ObjectRef,
        sources_ready: Callable[[], bool],
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.node_status = node_status
        self.status = status
        self.recorder = recorder
        self.node_ref = node_ref
        self.clock = clock
        self.node_uid = NodeUid()
        self.health = ApiHealth(
            api.server, recorder=recorder, node_ref=node_ref, clock=time.monotonic
        )
        api.on_outcome = self.health.observe
        self.mirrors = MirrorPods(
            api,
            node_name=node_name,
            status=status,
            recorder=recorder,
            node_uid=self.node_uid,
            sources_ready=sources_ready,
            registry=registry,
        )

    @classmethod
    async def connect(
        cls, kubeconfig: Path, *, state_dir: Path, registry: CollectorRegistry, **parts: Any
    ) -> ClusterReporter:
        """Raises ConfigError naming the kubeconfig when it cannot be used; the
        server itself is not contacted here (it may be down: that is retried)."""
        temp_dir = state_dir / CREDENTIALS_DIR
        temp_dir.mkdir(mode=0o700, exist_ok=True)
        temp_dir.chmod(0o700)
        clear_credentials(temp_dir)
        try:
            api = await KubeApi.connect(kubeconfig, temp_dir=temp_dir, registry=registry)
        except (
            ConfigException,
            OSError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            yaml.YAMLError,
        ) as e:
            # Whatever the file holds, a message naming it, not a traceback.
            raise ConfigError(f"kubeconfig: {kubeconfig}: {e}") from None
        log.info("cluster mode: reporting to %s", api.server)
        return cls(api, registry=registry, **parts)

    def parts(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The long-running parts, by name, for the agent's supervisor."""
        parts: dict[str, Coroutine[Any, Any, None]] = {}
        node = NodeContext(
            self.api,
            node_name=self.node_name,
            recorder=self.recorder,
            node_ref=self.node_ref,
            clock=self.clock,
        )
        parts["node"] = NodeReporter(
            node, node_status=self.node_status, set_uid=self.node_uid.set
        ).run()
        parts["lease"] = LeaseRenewer(node, node_uid=self.node_uid).run()
        parts["mirror"] = self.mirrors.run()
        return parts

    async def close(self) -> None:
        await self.api.close()
