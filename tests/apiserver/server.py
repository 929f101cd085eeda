"""HTTP for the test API server: routes, discovery, auth, Tables, watches, faults, request log.

``FakeApiServer`` runs an aiohttp application on its own event loop in a background
thread of the test process, on a free loopback port, over TLS (a test CA from
tests/integration/tls.py; client certificates from that CA authenticate, others fail the
handshake, as Go's ``VerifyClientCertIfGiven`` does) or plain HTTP. Tests read the stored
objects and act on them (as a user or another controller would) from their own thread.

Table answers (what ``kubectl get`` prints) reuse the agent's own ports of the API
server's printers (minikubelet/server/podprint.py, nodes.py, table.py), which are tested
there against upstream cases; leases and namespaces have their few columns here.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from minikubelet.model.schema import schema_version
from minikubelet.server import nodes as node_printing
from minikubelet.server import podprint
from minikubelet.server.errors import StatusError
from minikubelet.server.table import Column, table, wants_table
from tests.apiserver.store import (
    RESOURCES,
    ApiError,
    Obj,
    Rejection,
    Resource,
    Store,
    find_resource,
)
from tests.integration.tls import Pki

T = TypeVar("T")
WRITE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
# Without timeoutSeconds the real server ends a watch after 30-60 min; tests never wait so long.
WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: str
    content_type: str
    status: int
    time: float  # time.monotonic() when the request arrived
    user: str = ""


@dataclass(slots=True)
class Fault:
    status: int
    count: int
    retry_after: float | None
    match: Callable[[str, str], bool] | None


_KEY: web.AppKey[FakeApiServer] = web.AppKey("server")

LEASE_COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Holder", description="The holder of the lease."),
    Column("Age", description="CreationTimestamp is when this object was created."),
)
NAMESPACE_COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Status", description="The status of the namespace"),
    Column("Age", description="CreationTimestamp is when this object was created."),
)
DEFAULT_COLUMNS = (
    Column("Name", format="name", description="Name must be unique within a namespace."),
    Column("Created At", type="date", description="When the object was created."),
)


def _cells(res: Resource, obj: Obj, now: float) -> tuple[tuple[Column, ...], list[Any]]:
    meta = obj.get("metadata") or {}
    created = meta.get("creationTimestamp")
    if res.qualified == "pods":
        return podprint.COLUMNS, list(podprint.pod_cells(obj, now))
    if res.qualified == "nodes":
        return node_printing.COLUMNS, node_printing.node_cells(obj, now)
    if res.plural == "leases":
        holder = (obj.get("spec") or {}).get("holderIdentity") or ""
        return LEASE_COLUMNS, [meta.get("name"), holder, podprint.age(created, now)]
    if res.plural == "namespaces":
        phase = (obj.get("status") or {}).get("phase", "")
        return NAMESPACE_COLUMNS, [meta.get("name"), phase, podprint.age(created, now)]
    return DEFAULT_COLUMNS, [meta.get("name"), created]


def _table(res: Resource, objs: list[Obj], version: str, rv: str) -> Obj:
    now = time.time()
    columns = _cells(res, {}, now)[0]
    rows = [(_cells(res, o, now)[1], o) for o in objs]
    return table(columns, rows, include="Metadata", version=version, resource_version=rv)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )


def _discovery(host: str, path: str) -> Obj | None:
    """The legacy discovery documents (kubectl falls back to them from the aggregated form)."""
    groups = sorted({r.group for r in RESOURCES.values() if r.group})

    def group(name: str) -> Obj:
        version = {"groupVersion": f"{name}/v1", "version": "v1"}
        return {"name": name, "versions": [version], "preferredVersion": version}

    def resources(group_name: str) -> Obj:
        out = []
        for r in RESOURCES.values():
            if r.group != group_name:
                continue
            entry: Obj = {
                "name": r.plural,
                "singularName": r.kind.lower(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(WRITE_VERBS if r.writable else ("get", "list", "watch")),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            out.append(entry)
            if r.status:
                out.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        version = f"{group_name}/v1" if group_name else "v1"
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": version,
            "resources": out,
        }

    if path == "/api":
        cidr = {"clientCIDR": "0.0.0.0/0", "serverAddress": host}
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [cidr]}
    if path == "/api/v1":
        return resources("")
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group(g) for g in groups]}
    for g in groups:
        if path == f"/apis/{g}":
            return {"kind": "APIGroup", "apiVersion": "v1", **group(g)}
        if path == f"/apis/{g}/v1":
            return resources(g)
    if path == "/version":
        major, minor = schema_version().split(".")
        return {
            "major": major,
            "minor": minor,
            "gitVersion": f"v{major}.{minor}.0-minikubelet-test",
            "platform": "linux/amd64",
        }
    return None


@dataclass(frozen=True, slots=True)
class Target:
    resource: Resource
    namespace: str | None
    name: str
    subresource: str
    watch: bool


def _route(path: str) -> Target | None:
    """``/api/v1/...`` or ``/apis/{group}/v1/...``: which resource, namespace, name and
    subresource; None for a path the server does not serve."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
        group, rest = parts[1], parts[3:]
    else:
        return None
    watch = bool(rest) and rest[0] == "watch"
    rest = rest[1:] if watch else rest
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group or rest[2] != "status"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    res = RESOURCES.get(f"{rest[0]}.{group}" if group else rest[0])
    if res is None or (namespace is not None and not res.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and (sub != "status" or not res.status):
        return None
    if res.namespaced and name and namespace is None:
        return None
    return Target(res, namespace, name, sub, watch)


class FakeApiServer:
    """A small, faithful Kubernetes API server for tests (see the package docstring)."""

    def __init__(
        self,
        *,
        tls: Pki | None = None,
        tokens: set[str] | frozenset[str] = frozenset(),
        require_auth: bool = True,
        history: int = 1000,
    ) -> None:
        self.tls = tls
        self.tokens = frozenset(tokens)
        self.require_auth = require_auth
        self.store = Store(history=history)
        self.latency = 0.0
        self.port = 0
        self.url = ""
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-apiserver", daemon=True
        )
        self._thread.start()
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024**2)
        app[_KEY] = self
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
        self._call(self._runner.setup())
        self.come_up()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._site is not None:
            self.go_down()
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def go_down(self) -> None:
        """Close the listening socket and cut every open connection and watch: a client
        sees connection refused until ``come_up``."""

        async def down() -> None:
            assert self._site is not None
            assert self._runner is not None
            await self._site.stop()
            self._site = None
            self.store.close_watchers()
            server = self._runner.server
            for handler in server.connections if server is not None else []:
                handler.force_close()

        self._call(down())

    def come_up(self) -> None:
        """Listen again, on the same port."""

        async def up() -> None:
            assert self._runner is not None
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.port = sock.getsockname()[1]
            self._site = web.SockSite(self._runner, sock, ssl_context=self._ssl_context())
            await self._site.start()

        self._call(up())

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.tls.ca_file))
        context.load_cert_chain(self.tls.dir / "server.pem", self.tls.dir / "server-key.pem")
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop is not None, "the server is not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _act(self, fn: Callable[[], T]) -> T:
        """Run a store write on the server's loop, where watches are fed."""

        async def run() -> T:
            return fn()

        return self._call(run())

    # --- reads and acts for tests --------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.store.get(find_resource(resource), namespace, name)
        except ApiError:
            return None

    def list(self, resource: str, namespace: str | None = None) -> list[Obj]:
        return self.store.select(find_resource(resource), namespace)[0]

    def delete(
        self, resource: str, name: str, namespace: str | None = None, *, grace: int | None = None
    ) -> None:
        res = find_resource(resource)
        self._act(lambda: self.store.delete(res, namespace, name, {}, grace))

    def patch(
        self,
        resource: str,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = "application/merge-patch+json",
    ) -> Obj:
        res = find_resource(resource)
        return self._act(
            lambda: self.store.patch(
                res, namespace, name, patch, content_type, subresource=subresource or ""
            )
        )

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        res = find_resource(resource)
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        return self._act(lambda: self.store.create(res, ns if res.namespaced else None, obj))

    def request_log(self) -> builtins.list[RequestRecord]:
        with self._lock:
            return list(self._log)

    @property
    def requests(self) -> builtins.list[RequestRecord]:
        return self.request_log()

    @property
    def rejected(self) -> builtins.list[Rejection]:
        with self.store.lock:
            return list(self.store.rejected)

    # --- faults ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        match: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Answer the next ``count`` requests (those ``match(method, path)`` accepts) with
        ``status`` and a Status body, and ``Retry-After`` when given."""
        with self._lock:
            self._faults.append(Fault(status, count, retry_after, match))

    def _fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and (fault.match is None or fault.match(method, path)):
                    fault.count -= 1
                    return replace(fault)
            return None

    # --- kubeconfig ------------------------------------------------------------------

    def write_kubeconfig(self, path: Path, *, auth: str = "token") -> Path:
        """A kubeconfig for this server. ``auth``: "token", "tokenFile" (a file beside it),
        "cert" (client certificate and key files), "cert-data" (inline, CA too), "none"."""
        cluster: Obj = {"server": self.url}
        user: Obj = {}
        if self.tls is not None:
            if auth == "cert-data":
                cluster["certificate-authority-data"] = _b64(self.tls.ca_file)
            else:
                cluster["certificate-authority"] = str(self.tls.ca_file)
        if auth in ("token", "tokenFile"):
            if not self.tokens:
                raise ValueError("this server accepts no tokens")
            token = sorted(self.tokens)[0]
            if auth == "token":
                user["token"] = token
            else:
                token_file = path.with_name(path.name + ".token")
                token_file.write_text(token + "\n")
                user["tokenFile"] = str(token_file)
        elif auth in ("cert", "cert-data"):
            if self.tls is None:
                raise ValueError("client certificates need a TLS server")
            if auth == "cert":
                user["client-certificate"] = str(self.tls.client_cert)
                user["client-key"] = str(self.tls.client_key)
            else:
                user["client-certificate-data"] = _b64(self.tls.client_cert)
                user["client-key-data"] = _b64(self.tls.client_key)
        elif auth != "none":
            raise ValueError(f"unknown auth {auth!r}")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": "test", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # --- HTTP ------------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        arrived = time.monotonic()
        user = ""
        response: web.StreamResponse
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            fault = self._fault(request.method, request.path)
            if fault is not None:
                response = self._fault_response(fault)
            else:
                user = self._authenticate(request)
                response = await handler(request)
        except ApiError as e:
            response = _json(e.status(), e.code)
            if e.code == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="kubernetes"'
        except StatusError as e:  # from the shared selector parsers
            response = _json(ApiError(e.code, e.message).status(), e.code)
        record = RequestRecord(
            request.method,
            request.path,
            request.query_string,
            request.content_type if request.body_exists else "",
            response.status,
            arrived,
            user,
        )
        with self._lock:
            self._log.append(record)
        return response

    def _fault_response(self, fault: Fault) -> web.Response:
        words = {429: "Too many requests, please try again later."}
        error = ApiError(fault.status, words.get(fault.status, f"injected failure {fault.status}"))
        body = error.status()
        response = _json(body, fault.status)
        if fault.retry_after is not None:
            seconds = fault.retry_after
            shown = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            response.headers["Retry-After"] = shown
            body["details"] = {"retryAfterSeconds": int(seconds)}
            response.body = json.dumps(body).encode()
        return response

    def _authenticate(self, request: web.Request) -> str:
        transport = request.transport
        peer = transport.get_extra_info("peercert") if transport is not None else None
        if peer:
            subject = dict(item[0] for item in peer.get("subject", ()))
            return f"cert:{subject.get('commonName', '')}"
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            if token in self.tokens:
                return "token"
            raise ApiError(401, "Unauthorized")
        if self.require_auth:
            raise ApiError(401, "Unauthorized")
        return "anonymous"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method == "GET":
            doc = _discovery(request.host, path)
            if doc is not None:
                return _json(doc)
        target = _route(path)
        if target is None:
            raise ApiError(404, "the server could not find the requested resource")
        res, ns, name = target.resource, target.namespace, target.name
        method = request.method
        store = self.store
        query = request.query
        if method == "GET" and not name:
            labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
            if target.watch or _go_bool(query.get("watch", "")):
                return await self._watch(request, res, ns, labels, fields)
            items, rv = store.select(res, ns, labels=labels, fields=fields)
            version = wants_table(request)
            if version:
                return _json(_table(res, items, version, rv))
            for item in items:  # list items carry no kind of their own, as the real server's
                item.pop("kind", None)
                item.pop("apiVersion", None)
            kind = f"{res.kind}List"
            return _json(
                {
                    "kind": kind,
                    "apiVersion": res.api_version,
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }
            )
        if method == "GET":
            obj = store.get(res, ns, name)
            version = wants_table(request)
            return _json(_table(res, [obj], version, "") if version else obj)
        body = await self._body(request) if request.body_exists else None
        if method == "POST" and not name:
            return _json(store.create(res, ns, body), 201)
        if method == "PUT" and name:
            return _json(store.replace(res, ns, name, body, subresource=target.subresource))
        if method == "PATCH" and name:
            ct = request.content_type
            return _json(store.patch(res, ns, name, body, ct, subresource=target.subresource))
        if method == "DELETE" and name and not target.subresource:
            options = body if isinstance(body, dict) else {}
            grace = query.get("gracePeriodSeconds")
            try:
                seconds = int(grace) if grace is not None else None
            except ValueError:
                raise ApiError(400, f"gracePeriodSeconds: invalid value {grace!r}") from None
            return _json(store.delete(res, ns, name, options, seconds))
        raise ApiError(405, "the server does not allow this method on the requested resource")

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {e}") from None

    async def _watch(
        self, request: web.Request, res: Resource, ns: str | None, labels: str, fields: str
    ) -> web.StreamResponse:
        watcher = self.store.watcher(res, ns, labels=labels, fields=fields)
        self.store.watch(watcher, request.query.get("resourceVersion", ""))
        timeout = float(request.query.get("timeoutSeconds") or WATCH_TIMEOUT)
        table_version = wants_table(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), left)
                except TimeoutError:
                    break
                if event is None:
                    break
                kind, obj = event
                if table_version and kind != "ERROR":
                    obj = _table(res, [obj], table_version, "")
                line = json.dumps({"type": kind, "object": obj}, separators=(",", ":"))
                await response.write(line.encode() + b"\n")
        except (ConnectionResetError, RuntimeError):
            pass  # the client left, or go_down cut the connection
        finally:
            self.store.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response


def _go_bool(value: str) -> bool:
    """A bool query parameter as the API server reads it (Go's strconv.ParseBool):
    clients send ``true``, ``1`` and Python clients ``True``; a bad value is 400."""
    if value in ("", "0", "f", "F", "false", "FALSE", "False"):
        return False
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    raise ApiError(400, f"invalid boolean value {value!r}")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
