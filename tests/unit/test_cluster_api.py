"""The API connection of cluster mode: errors, back-off, health, and KubeApi over
real HTTP against a tiny local server (no Docker)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from minikubelet.cluster.api import (
    STRATEGIC_MERGE_PATCH,
    ApiError,
    KubeApi,
    Outcome,
    _watch_event,
    error_from_answer,
    retry_after_seconds,
)
from minikubelet.cluster.health import ApiHealth
from minikubelet.cluster.retry import Retry
from minikubelet.events import EventRecorder, EventType, ObjectRef

NODE = ObjectRef(kind="Node", name="n1", uid="n1")


def test_error_from_a_status_answer_keeps_reason_message_and_retry_after() -> None:
    body = json.dumps(
        {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"}
    ).encode()
    error = error_from_answer(429, body, {"Retry-After": "3"})
    assert (error.code, error.reason, error.message, error.retry_after) == (
        429,
        "TooManyRequests",
        "slow down",
        3.0,
    )
    assert error.server_fault
    assert not error.conflict


def test_error_from_a_non_status_answer_names_the_code() -> None:
    error = error_from_answer(502, b"<html>bad gateway</html>", {})
    assert error.code == 502
    assert error.reason == "HTTP502"
    assert "bad gateway" in error.message
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("code", "reason", "kinds"),
    [
        (0, "ClientConnectorError", (True, False, False, False)),
        (409, "AlreadyExists", (False, True, True, False)),
        (409, "Conflict", (False, True, False, False)),
        (404, "NotFound", (False, False, False, True)),
        (503, "ServiceUnavailable", (True, False, False, False)),
        (401, "Unauthorized", (False, False, False, False)),
    ],
)
def test_error_kinds(code: int, reason: str, kinds: tuple[bool, bool, bool, bool]) -> None:
    """(server fault, conflict, already exists, not found)"""
    error = ApiError(code, reason, "m")
    assert (error.server_fault, error.conflict, error.already_exists, error.not_found) == kinds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5", 5.0), ("0", 0.0), ("1.5", 1.5), ("", None), (None, None), ("-1", None)],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_http_date_is_ignored() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT") is None


def test_watch_error_event_raises_its_status() -> None:
    line = json.dumps(
        {
            "type": "ERROR",
            "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
        }
    ).encode()
    with pytest.raises(ApiError) as raised:
        _watch_event(line)
    assert (raised.value.code, raised.value.reason) == (410, "Expired")
    assert _watch_event(b"\n") is None
    event = _watch_event(b'{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n')
    assert event is not None
    assert event["type"] == "ADDED"


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_retry_doubles_to_the_cap_within_its_jitter(draw: float, factor: float) -> None:
    retry = Retry(initial=0.2, cap=7.0, jitter=0.2, random=lambda: draw)
    delays = [retry.next_delay() for _ in range(8)]
    expected = [min(7.0, 0.2 * 2**i) * factor for i in range(8)]
    assert delays == pytest.approx(expected)


def test_retry_starts_again_after_a_reset() -> None:
    retry = Retry(random=lambda: 0.5)
    retry.next_delay()
    retry.reset()
    assert retry.next_delay() == pytest.approx(0.2)


def test_retry_never_sooner_than_retry_after() -> None:
    retry = Retry(initial=0.2, cap=7.0, jitter=0.2, random=lambda: 0.0)
    assert retry.next_delay(ApiError(429, "TooManyRequests", "m", retry_after=3.0)) == 3.0
    # A Retry-After shorter than the back-off does not shorten it.
    retry = Retry(initial=5.0, cap=7.0, jitter=0.0, random=lambda: 0.0)
    assert retry.next_delay(ApiError(503, "ServiceUnavailable", "m", retry_after=1.0)) == 5.0


def test_health_fails_on_no_answer_and_recovers_with_events() -> None:
    now = [100.0]
    recorder = EventRecorder(host="n1", clock=lambda: now[0])
    health = ApiHealth("https://k", recorder=recorder, node_ref=NODE, clock=lambda: now[0])
    refused = ApiError(0, "ClientConnectorError", "connection refused")
    health.observe(Outcome(ok=False, error=refused, at=100.0))
    health.observe(Outcome(ok=False, error=refused, at=101.0))
    now[0] = 112.0
    assert _run(health.check()) == ("https://k: no answer: connection refused (failing for 12s)")
    health.observe(Outcome(ok=True, error=None, at=112.0))
    assert _run(health.check()) is None
    reasons = [(e.type, e.reason, e.count) for e in recorder.list()]
    assert reasons == [
        (EventType.WARNING, "APIServerUnreachable", 1),
        (EventType.NORMAL, "APIServerReachable", 1),
    ]


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


# --- KubeApi over real HTTP ---


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def node(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "auth": request.headers.get("Authorization", ""),
                "type": request.headers.get("Content-Type", ""),
                "body": await request.text(),
            }
        )
        name = request.match_info["name"]
        if name == "rotated" and request.headers.get("Authorization") != "Bearer new":
            return web.json_response(
                {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "no"},
                status=401,
            )
        if name == "big":
            # Far more than one read's worth: the answer arrives in pieces.
            labels = {f"l{i}": "x" * 60 for i in range(20_000)}
            return web.json_response({"kind": "Node", "metadata": {"name": name, "labels": labels}})
        if name == "missing":
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"},
                status=404,
            )
        return web.json_response({"kind": "Node", "metadata": {"name": name}})

    app = web.Application()
    app.router.add_route("*", "/api/v1/nodes/{name}", node)
    app.router.add_route("*", "/api/v1/nodes/{name}/status", node)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def _kubeconfig(path: Path, server: str, user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


@contextlib.asynccontextmanager
async def _connected(
    tmp_path: Path,
    server: str,
    user: dict[str, Any],
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[KubeApi]:
    """KubeApi on a kubeconfig naming ``server`` with credentials ``user``, closed after."""
    config = _kubeconfig(tmp_path / "kc", server, user)
    api = await KubeApi.connect(config, temp_dir=tmp_path, registry=registry or CollectorRegistry())
    try:
        yield api
    finally:
        await api.close()


async def test_kubeapi_sends_the_token_and_returns_the_answer(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, seen = server
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    registry = CollectorRegistry()
    outcomes: list[Outcome] = []
    async with _connected(tmp_path, url, {"tokenFile": str(token)}, registry) as api:
        api.on_outcome = outcomes.append
        node = await api.call("get", api.core.read_node, "n1")
        assert node["metadata"]["name"] == "n1"
        await api.call(
            "patch",
            api.core.patch_node_status,
            "n1",
            {"status": {"phase": "Running"}},
            _content_type=STRATEGIC_MERGE_PATCH,
        )
        with pytest.raises(ApiError) as raised:
            await api.call("get", api.core.read_node, "missing")
        assert raised.value.not_found
        assert raised.value.message == "nope"
    assert [s["auth"] for s in seen] == ["Bearer t0k3n"] * 3
    # Counted in client-go's names and labels (HTTP methods), so its dashboards work.
    counted = {
        (labels["code"], labels["method"]): value
        for metric in registry.collect()
        if metric.name == "rest_client_requests"
        for sample in metric.samples
        if sample.name == "rest_client_requests_total"
        for labels, value in [(sample.labels, sample.value)]
    }
    assert counted == {("200", "GET"): 1.0, ("200", "PATCH"): 1.0, ("404", "GET"): 1.0}
    assert seen[1]["method"] == "PATCH"
    assert seen[1]["type"] == STRATEGIC_MERGE_PATCH
    assert json.loads(seen[1]["body"]) == {"status": {"phase": "Running"}}
    # A 404 is an answer: the connection is healthy.
    assert [o.ok for o in outcomes] == [True, True, True]


async def test_kubeapi_without_an_answer_raises_code_zero(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcomes: list[Outcome] = []
    async with _connected(tmp_path, f"http://127.0.0.1:{port}", {"token": "x"}) as api:
        api.on_outcome = outcomes.append
        with pytest.raises(ApiError) as raised:
            await api.call("get", api.core.read_node, "n1")
    assert raised.value.code == 0
    assert raised.value.server_fault
    assert [o.ok for o in outcomes] == [False]


async def test_a_401_reads_the_kubeconfig_again_for_the_next_try(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, seen = server
    token = tmp_path / "token"
    token.write_text("old\n")
    async with _connected(tmp_path, url, {"tokenFile": str(token)}) as api:
        token.write_text("new\n")  # rotated, as a projected service-account token is
        with pytest.raises(ApiError) as raised:
            await api.call("get", api.core.read_node, "rotated")
        assert raised.value.code == 401
        node = await api.call("get", api.core.read_node, "rotated")
    assert node["metadata"]["name"] == "rotated"
    assert [s["auth"] for s in seen] == ["Bearer old", "Bearer new"]


async def test_a_large_answer_is_read_whole(
    server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, _ = server
    async with _connected(tmp_path, url, {"token": "t"}) as api:
        node = await api.call("get", api.core.read_node, "big")
    assert len(node["metadata"]["labels"]) == 20_000


def test_key_files_of_an_earlier_run_are_cleared(tmp_path: Path) -> None:
    from minikubelet.cluster.reporter import clear_credentials

    outside = tmp_path / "outside"
    outside.write_text("keep")
    credentials = tmp_path / "kubeconfig"
    credentials.mkdir()
    (credentials / "tmpk3y").write_text("-----BEGIN PRIVATE KEY-----")
    (credentials / "link").symlink_to(outside)
    (credentials / "sub").mkdir()
    clear_credentials(credentials)
    assert sorted(p.name for p in credentials.iterdir()) == ["sub"]
    assert outside.read_text() == "keep"
