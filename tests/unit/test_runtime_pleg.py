"""The PLEG keeps the cache current across relists (no Docker).

A failed relist is retried until one succeeds; events handled while a relist
is in flight are not undone by it. The engine is a fake executor that answers
the calls a relist makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerState
from minikubelet.errors import NotFoundError, RuntimeUnavailableError
from minikubelet.model import naming
from minikubelet.runtime import calls, pleg
from minikubelet.runtime.executor import DockerExecutor
from minikubelet.runtime.inspect import record_from_inspect
from minikubelet.runtime.network import BridgeNetwork
from minikubelet.runtime.pleg import Pleg
from minikubelet.runtime.volumes import PodPaths
from minikubelet.util.backoff import ExponentialDelay


class FlakyEngine:
    """Fails the first ``failures`` lists, then lists nothing."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lists = 0

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        assert fn is calls.list_containers, fn
        self.lists += 1
        if self.lists <= self.failures:
            raise RuntimeUnavailableError("Docker engine unreachable: connection refused")
        return []


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pleg, "RELIST_RETRY", ExponentialDelay(initial=0.01, cap=0.02))


def make_pleg(tmp_path: Path, engine: object) -> Pleg:
    executor = cast(DockerExecutor, engine)
    return Pleg(
        executor,
        RuntimeCache(),
        node_name="n",
        # Never set up, so a relist reserves no addresses.
        network=BridgeNetwork(executor, name="net", pod_cidr="10.0.0.0/24", node_name="n"),
        paths=PodPaths(tmp_path),
        image_ids=lambda image: "",
    )


async def reconnect(subject: Pleg) -> None:
    """The event stream drops and comes back; wait for the relist that follows to end."""
    subject._on_stream_disconnected("test")
    assert subject._cache.stale
    subject._on_stream_connected()
    assert subject._relisting is not None
    await asyncio.wait_for(subject._relisting, timeout=5)


async def test_failed_relists_are_retried_until_the_cache_is_current(tmp_path: Path) -> None:
    engine = FlakyEngine(failures=3)
    subject = make_pleg(tmp_path, engine)
    try:
        await reconnect(subject)
        assert not subject._cache.stale
        assert engine.lists == 4
    finally:
        await subject.close()


async def test_a_relist_is_not_repeated_once_it_succeeded(tmp_path: Path) -> None:
    engine = FlakyEngine(failures=0)
    subject = make_pleg(tmp_path, engine)
    try:
        await reconnect(subject)
        assert not subject._cache.stale
        assert engine.lists == 1
    finally:
        await subject.close()


UID = "0123456789abcdef0123456789abcdef"


def inspected(cid: str, name: str) -> dict[str, Any]:
    """A running app container of pod ``UID`` as ``docker inspect`` shows it."""
    labels = {
        naming.POD_UID: UID,
        naming.DOCKER_TYPE: naming.TYPE_CONTAINER,
        naming.CONTAINER_NAME: name,
    }
    return {
        "Id": cid,
        "Created": "2026-01-01T00:00:00Z",
        "Config": {"Labels": labels, "Image": "busybox:1"},
        "State": {"Status": "running", "StartedAt": "2026-01-01T00:00:01Z"},
    }


class GatedEngine:
    """Lists running ``a`` (known) and ``b`` (new); inspects wait for ``gate``.

    As Docker does, an inspect asked after a container's destroy finds nothing;
    one asked before it answers with what it saw then.
    """

    def __init__(self) -> None:
        self.inspecting = asyncio.Event()
        self.gate = asyncio.Event()
        self.destroyed: set[str] = set()

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if fn is calls.list_containers:
            return [{"Id": "c-a", "State": "running"}, {"Id": "c-b", "State": "running"}]
        assert fn is calls.inspect_container, fn
        if args[0] in self.destroyed:
            raise NotFoundError(f"No such container: {args[0]}")
        self.inspecting.set()
        await self.gate.wait()
        return inspected(args[0], "b")


async def relist_with(subject: Pleg, engine: GatedEngine, *events: dict[str, Any]) -> None:
    """Relist, delivering ``events`` while its inspect is in flight."""
    relist = asyncio.ensure_future(subject.relist())
    await asyncio.wait_for(engine.inspecting.wait(), timeout=5)
    for event in events:
        if event["Action"] == "destroy":
            engine.destroyed.add(event["Actor"]["ID"])
        subject._on_event(event)
    engine.gate.set()
    await asyncio.wait_for(relist, timeout=5)
    # Let what the events set off (an adoption, an exit inspect) run out.
    if subject._background:
        await asyncio.wait(subject._background, timeout=5)


def event(action: str, cid: str, **attributes: str) -> dict[str, Any]:
    return {"Action": action, "Actor": {"ID": cid, "Attributes": attributes}, "timeNano": 9e18}


async def test_a_death_during_a_relist_is_not_undone(tmp_path: Path) -> None:
    engine = GatedEngine()
    subject = make_pleg(tmp_path, engine)
    cache = subject._cache
    known = record_from_inspect(inspected("c-a", "a"))
    assert known is not None
    cache.put(known)
    try:
        await relist_with(subject, engine, event("die", "c-a", exitCode="137"))
        after = cache.get("c-a")
        assert after is not None
        assert after.state is ContainerState.EXITED
        assert after.exit_code == 137
        assert cache.get("c-b") is not None  # what the relist found is taken in
    finally:
        await subject.close()


async def test_a_destroy_during_a_relist_is_not_resurrected(tmp_path: Path) -> None:
    engine = GatedEngine()
    subject = make_pleg(tmp_path, engine)
    try:
        removed = (event("die", "c-b", exitCode="0"), event("destroy", "c-b"))
        await relist_with(subject, engine, *removed)
        assert subject._cache.get("c-b") is None
    finally:
        await subject.close()
