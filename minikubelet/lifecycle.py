"""Lifecycle hooks, postStart and preStop, with the kubelet's semantics.

- exec: runs in the container through the Docker API; a non-zero exit or an
  error fails the hook, and its output goes into the message. At the
  deadline its process is killed, as a probe's is.
- httpGet: only transport errors fail; the HTTP status is ignored, as the
  kubelet ignores it for hooks (unlike probes). No certificate checks. At
  most ``BODY_LIMIT`` bytes of the body are read, as on the kubelet.
- sleep: waits, bounded like the others.
- tcpSocket: accepted by the API for compatibility but fails when run, as on
  the kubelet.

The caller bounds each run: preStop by the grace period, postStart by
``POST_START_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import aiohttp

from minikubelet.errors import MinikubeletError
from minikubelet.model.spec import (
    Container,
    ExecAction,
    GRPCAction,
    Handler,
    HTTPGetAction,
    Pod,
    SleepAction,
    TCPSocketAction,
)
from minikubelet.prober.handlers import Executor, PortError, resolve_port

log = logging.getLogger(__name__)

USER_AGENT = "kube-lifecycle/1.33"
# The kubelet waits on an exec postStart without limit; a worker stuck forever
# on one container would never stop or restart the pod, so we bound it.
POST_START_TIMEOUT = 300.0
MESSAGE_LIMIT = 1024
# The kubelet reads (and drops) at most this much of a hook's response body.
BODY_LIMIT = 10 * 1024


class HookError(MinikubeletError):
    reason: ClassVar[str] = "HookError"


@dataclass(frozen=True, slots=True)
class HookTarget:
    pod_key: str
    container: str
    container_id: str
    # The pod's IP; empty for hostNetwork pods, whose servers answer on loopback.
    pod_ip: str
    # The container's named ports, for handlers that give a port by name.
    ports: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, pod: Pod, container: Container, container_id: str, pod_ip: str) -> HookTarget:
        return cls(pod.key, container.name, container_id, pod_ip, container.named_ports)


def http_url(action: HTTPGetAction, target: HookTarget) -> str:
    host = action.host or target.pod_ip or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    path = action.path if action.path.startswith("/") else "/" + action.path
    try:
        port = resolve_port(action.port, target.ports)
    except PortError as e:
        raise HookError(f"{e} ({target.container})") from None
    return f"{action.scheme.lower()}://{host}:{port}{path}"


class HookRunner:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No pooled keep-alive: hooks are rare, and a pod's server may go away.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, ssl=False),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, kind: str, handler: Handler, target: HookTarget, *, timeout: float) -> None:
        """Run one hook; raises HookError (with a kubelet-like message) when it fails."""
        what = f"{kind} hook for Container {target.container!r} in Pod {target.pod_key!r}"
        try:
            async with asyncio.timeout(timeout):
                await self._run(handler, target, timeout)
        except TimeoutError:
            raise HookError(f"{what} did not finish within {timeout:.0f}s") from None
        except HookError as e:
            raise HookError(f"{what} failed - error: {e}") from None

    async def _run(self, handler: Handler, target: HookTarget, timeout: float) -> None:
        if isinstance(handler, ExecAction):
            try:
                # The executor kills the command at the deadline (or when the
                # surrounding timeout cancels it): left running, it would hold
                # an exec thread for as long as it pleased.
                code, output = await self._executor.exec_in(
                    target.container_id, handler.command, timeout=timeout
                )
            except MinikubeletError as e:
                raise HookError(str(e)) from e
            if code != 0:
                text = output.decode("utf-8", errors="replace")[-MESSAGE_LIMIT:]
                raise HookError(
                    f"command {shlex.join(handler.command)!r} exited with {code}: {text}"
                )
        elif isinstance(handler, HTTPGetAction):
            url = http_url(handler, target)
            headers = dict(handler.headers)
            try:
                async with self._http().get(url, headers=headers, allow_redirects=False) as resp:
                    # Not resp.read(): a server answering without end would
                    # fill the agent's memory until the deadline.
                    await resp.content.read(BODY_LIMIT)
            except aiohttp.ClientError as e:
                raise HookError(f"Get {url!r}: {e}") from e
            except OSError as e:
                raise HookError(f"Get {url!r}: {e.strerror or e}") from e
        elif isinstance(handler, SleepAction):
            await asyncio.sleep(handler.seconds)
        elif isinstance(handler, TCPSocketAction | GRPCAction):
            raise HookError(f"{type(handler).__name__} is not supported in lifecycle hooks")
