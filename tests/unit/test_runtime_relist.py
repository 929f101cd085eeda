"""The runtime heals its cache: a failed relist is retried until one succeeds (no Docker).

The engine is a fake executor that answers the SDK calls a relist makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from minikubelet.errors import RuntimeUnavailableError
from minikubelet.runtime import docker as docker_runtime
from minikubelet.runtime.docker import DockerRuntime, RuntimeConfig
from minikubelet.runtime.dockerspec import NodeResources
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.state import RuntimeCache
from minikubelet.util.backoff import ExponentialDelay


class FlakyEngine:
    """Fails the first ``failures`` lists, then lists nothing."""

    base_url = "unix:///nonexistent.sock"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lists = 0

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        assert fn.__name__ == "_list_ours", fn
        self.lists += 1
        if self.lists <= self.failures:
            raise RuntimeUnavailableError("Docker engine unreachable: connection refused")
        return []


def make_runtime(tmp_path: Path, engine: FlakyEngine) -> DockerRuntime:
    return DockerRuntime(
        RuntimeConfig(
            node_name="n",
            state_dir=tmp_path,
            network_name="net",
            pod_cidr="10.0.0.0/24",
            infra_image="pause",
            host_ip="192.0.2.1",
        ),
        cast(DockerExecutor, engine),
        cache=RuntimeCache(),
        events=lambda *args, **kwargs: None,
        node=NodeResources(cpu_milli=1000, memory=2**30),
    )


async def test_failed_relists_are_retried_until_the_cache_is_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_runtime, "RELIST_RETRY", ExponentialDelay(initial=0.01, cap=0.02))
    engine = FlakyEngine(failures=3)
    runtime = make_runtime(tmp_path, engine)
    try:
        runtime._on_stream_disconnected("test")
        assert runtime.is_stale()
        runtime._on_stream_connected()
        assert runtime._relisting is not None
        await asyncio.wait_for(runtime._relisting, timeout=5)
        assert not runtime.is_stale()
        assert engine.lists == 4
    finally:
        await runtime.close()


async def test_a_relist_is_not_retried_once_it_succeeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_runtime, "RELIST_RETRY", ExponentialDelay(initial=0.01, cap=0.02))
    engine = FlakyEngine(failures=0)
    runtime = make_runtime(tmp_path, engine)
    try:
        runtime._on_stream_disconnected("test")
        runtime._on_stream_connected()
        assert runtime._relisting is not None
        await asyncio.wait_for(runtime._relisting, timeout=5)
        assert not runtime.is_stale()
        assert engine.lists == 1
    finally:
        await runtime.close()
