"""Running one probe: exec through Docker, TCP and HTTP natively in asyncio, gRPC health.

Each returns an ``Outcome`` and a short output for the ``Unhealthy`` event.
Network probes never touch the Docker thread pool: a TCP connect or an HTTP
GET to a pod costs about a millisecond here, an exec about 40 ms of engine time.

A probe the agent could not even start, for want of a file descriptor of its
own (EMFILE, ENFILE), is an ERROR: the container did nothing wrong, and
counting it a failure would let a busy agent restart healthy containers.
What a pod sends back is bounded: 10 KiB of body, header lines within the
stream's limit (a longer one fails the probe), all within the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from minikubelet.errors import MinikubeletError
from minikubelet.model.spec import ExecAction, GRPCAction, Handler, HTTPGetAction, TCPSocketAction
from minikubelet.prober.state import Outcome

USER_AGENT = "kube-probe/1.33"
OUTPUT_LIMIT = 10 * 1024
MAX_REDIRECTS = 10


class Executor(Protocol):
    async def exec_in(
        self, container_id: str, command: tuple[str, ...] | list[str], *, timeout: float | None
    ) -> tuple[int, bytes]: ...


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    container_id: str
    # Where network probes go: the pod IP, or 127.0.0.1 for hostNetwork pods.
    host: str
    ports: Mapping[str, int]


class PortError(Exception):
    pass


def _out_of_files(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.EMFILE, errno.ENFILE)


def resolve_port(port: int | str, ports: Mapping[str, int]) -> int:
    if isinstance(port, int):
        return port
    if port in ports:
        return ports[port]
    raise PortError(f"port {port!r} names no port of the container")


class ProbeRunner:
    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def close(self) -> None:
        """Nothing is pooled: every probe opens and closes its own connection."""

    async def run(
        self, handler: Handler, target: ProbeTarget, timeout: float
    ) -> tuple[Outcome, str]:
        try:
            if isinstance(handler, ExecAction):
                return await self._exec(handler, target, timeout)
            if isinstance(handler, TCPSocketAction):
                return await self._tcp(handler, target, timeout)
            if isinstance(handler, HTTPGetAction):
                return await self._http_get(handler, target, timeout)
            if isinstance(handler, GRPCAction):
                return await _grpc(handler, target, timeout)
        except PortError as e:
            return Outcome.ERROR, str(e)
        return Outcome.ERROR, f"{type(handler).__name__} cannot be a probe"

    async def _exec(
        self, action: ExecAction, target: ProbeTarget, timeout: float
    ) -> tuple[Outcome, str]:
        try:
            code, output = await self._executor.exec_in(
                target.container_id, action.command, timeout=timeout
            )
        except TimeoutError:
            return Outcome.FAILURE, f"command timed out after {timeout:g}s"
        except MinikubeletError as e:
            return Outcome.ERROR, str(e)
        text = output[-OUTPUT_LIMIT:].decode("utf-8", errors="replace")
        if code == 0:
            return Outcome.SUCCESS, text
        return Outcome.FAILURE, text or f"command exited with {code}"

    async def _tcp(
        self, action: TCPSocketAction, target: ProbeTarget, timeout: float
    ) -> tuple[Outcome, str]:
        host = action.host or target.host
        port = resolve_port(action.port, target.ports)
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as e:
            outcome = Outcome.ERROR if _out_of_files(e) else Outcome.FAILURE
            return outcome, f"dial tcp {host}:{port}: {_reason(e)}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome.SUCCESS, ""

    async def _http_get(
        self, action: HTTPGetAction, target: ProbeTarget, timeout: float
    ) -> tuple[Outcome, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        for name, value in action.headers:
            headers[name] = value
        if headers.get("Accept") == "":
            del headers["Accept"]
        host = action.host or target.host
        port = resolve_port(action.port, target.ports)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        path = action.path if action.path.startswith("/") else "/" + action.path
        url = f"{action.scheme.lower()}://{netloc}{path}"
        first_host = urlsplit(url).hostname
        try:
            async with asyncio.timeout(timeout):
                for _ in range(MAX_REDIRECTS + 1):
                    status, location, body = await _get_once(url, headers)
                    if 300 <= status < 400 and location:
                        nxt = urljoin(url, location)
                        if urlsplit(nxt).hostname != first_host:
                            # The kubelet does not follow these and counts them a success.
                            return Outcome.SUCCESS, f"probe terminated redirects to {nxt}"
                        url = nxt
                        continue
                    break
        except TimeoutError:
            return Outcome.FAILURE, f"Get {url!r}: context deadline exceeded"
        except asyncio.LimitOverrunError:
            return Outcome.FAILURE, f"Get {url!r}: net/http: HTTP header line too long"
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            outcome = Outcome.ERROR if _out_of_files(e) else Outcome.FAILURE
            return outcome, f"Get {url!r}: {_reason(e)}"
        if 200 <= status < 400:
            return Outcome.SUCCESS, ""
        text = body.decode("utf-8", errors="replace")
        return Outcome.FAILURE, f"HTTP probe failed with statuscode: {status} {text}".strip()


async def _get_once(url: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """One HTTP/1.1 GET on a fresh connection: (status, Location, first 10 KiB of body).

    A probe needs only the status, a redirect target and a little body for the
    event, over a connection it closes at once (the kubelet disables
    keep-alive). A full client costs about twice the CPU per request, which at
    a hundred probes a second is several percent of a core.
    """
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=_insecure_tls() if tls else None, server_hostname=host if tls else None
    )
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        # A Host header among the probe's headers replaces the URL's, as on the kubelet.
        host_header = next((v for k, v in headers.items() if k.lower() == "host"), parts.netloc)
        lines = [f"GET {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
        lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line = await reader.readuntil(b"\r\n")
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise ValueError(f"malformed HTTP status line {status_line[:80]!r}")
        location = ""
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"location":
                location = value.strip().decode("latin-1")
        body = await reader.read(OUTPUT_LIMIT)
        return int(fields[1]), location, body
    finally:
        writer.close()


@functools.cache
def _insecure_tls() -> ssl.SSLContext:
    """TLS without certificate checks, as the kubelet's probes do."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reason(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "i/o timeout"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower()
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__


async def _grpc(action: GRPCAction, target: ProbeTarget, timeout: float) -> tuple[Outcome, str]:
    host = target.host
    address = f"[{host}]:{action.port}" if ":" in host else f"{host}:{action.port}"
    try:
        # Imported here: grpcio is only needed by pods that use gRPC probes.
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
    except OSError as e:
        # The import and gRPC's own poller need descriptors too, before any connection.
        return Outcome.ERROR, f"grpc channel: {_reason(e)}"
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=action.service), timeout=timeout
            )
        except grpc.aio.AioRpcError as e:
            details = e.details() or ""
            # gRPC reports a failed socket() only in its text.
            short = os.strerror(errno.EMFILE) in details
            outcome = Outcome.ERROR if short else Outcome.FAILURE
            return outcome, f"rpc error: code = {e.code().name} desc = {details}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return Outcome.SUCCESS, ""
    return Outcome.FAILURE, f"service unhealthy (responded with {status!r})"
