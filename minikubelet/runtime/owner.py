"""Which agent owns a node name on this Docker engine.

Everything the agent does to containers selects them by the node name label.
Two agents started with the same node name on one engine (two state
directories, say a packaged service and a test run) would each take the
other's pods for orphans and kill them. So the first agent claims the name in
the engine itself: a Docker volume ``minikubelet-node-<node>`` labelled with
its state directory. A second agent finds the claim, asks whether the owner
is alive (its state directory's lock, util/statedir.py), and refuses to start
if it is, naming that directory. A claim left by a stopped agent is taken over.

A volume because its name is unique in the engine and it costs nothing: no
image, nothing in ``docker ps``. Docker's volume create is idempotent, not
exclusive, so every claim is read back after it is written: whoever's label
stuck owns the name, and the loser refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minikubelet.errors import ConfigError, NotFoundError
from minikubelet.runtime.executor import DockerExecutor

log = logging.getLogger(__name__)

OWNER_LABEL = "io.minikubelet.owner.state-dir"
CLAIM_ATTEMPTS = 3


def claim_volume_name(node_name: str) -> str:
    return f"minikubelet-node-{node_name.lower()}"


async def claim_node(
    executor: DockerExecutor,
    *,
    node_name: str,
    state_dir: Path,
    owner_alive: Callable[[Path], bool],
) -> None:
    """Claim ``node_name`` for the agent using ``state_dir``; ConfigError if a live agent has it."""
    name = claim_volume_name(node_name)
    ours = await asyncio.to_thread(os.path.realpath, state_dir)

    async def inspect() -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await executor.call(lambda c: c.inspect_volume(name))
        except NotFoundError:
            return None
        return info

    for _ in range(CLAIM_ATTEMPTS):
        info = await inspect()
        if info is None:
            await executor.call(lambda c: c.create_volume(name, labels={OWNER_LABEL: ours}))
            continue  # read it back: a racing agent may have created it first
        owner = str((info.get("Labels") or {}).get(OWNER_LABEL) or "")
        if owner == ours:
            return
        if owner and owner_alive(Path(owner)):
            raise ConfigError(
                f"node name {node_name!r} is already run on this Docker engine by the "
                f"minikubelet with state directory {owner}; give this agent another "
                "--node-name, or stop that one"
            )
        log.warning(
            "taking over node name %s from a stopped minikubelet (state directory %s)",
            node_name,
            owner or "unknown",
        )
        with contextlib.suppress(NotFoundError):
            await executor.call(lambda c: c.remove_volume(name))
    raise ConfigError(f"could not claim node name {node_name!r} on the Docker engine")
