"""Discovery: what kubectl reads before any request, so it can be pointed at the agent.

kubectl (and any client-go program) first asks ``/api`` and ``/apis`` which
groups and versions exist, then ``/api/v1`` which resources, with their
kinds, short names and verbs, and ``/version``. Each is answered with the
legacy (unaggregated) documents as ``application/json``: kubectl 1.26+ asks
for the aggregated ``apidiscovery.k8s.io`` form first and falls back to these
when the answer is plain JSON, and older kubectl asks only for these.

A resource is listed only while the application serves its path, so what
discovery promises is always what the agent answers (other modules add
events, nodes and logs; this one needs no change when they land). Only
``get``, ``list`` and ``watch`` are offered: nothing writes.

The OpenAPI documents (``/openapi/v2``, ``/openapi/v3``) are not served:
404, which kubectl takes as a server without OpenAPI (``explain`` says so;
``get``, ``describe`` and ``logs`` never need it).
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from minikubelet import __version__
from minikubelet.server.deps import LIMITS
from minikubelet.server.errors import StatusError
from minikubelet.server.stream import send_body

READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True, slots=True)
class APIResource:
    name: str
    kind: str
    # The path that must be served for the resource to be listed; ``{...}`` matches any
    # variable name.
    route: str
    singular: str = ""
    namespaced: bool = True
    verbs: tuple[str, ...] = READ_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def to_api(self) -> dict[str, object]:
        body: dict[str, object] = {
            "name": self.name,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            body["shortNames"] = list(self.short_names)
        if self.categories:
            body["categories"] = list(self.categories)
        return body


# In the API server's order (alphabetical), subresources after their resource.
RESOURCES = (
    APIResource(
        "events",
        "Event",
        "/api/v1/namespaces/{}/events",
        singular="event",
        short_names=("ev",),
    ),
    APIResource(
        "namespaces",
        "Namespace",
        "/api/v1/namespaces",
        singular="namespace",
        namespaced=False,
        short_names=("ns",),
    ),
    APIResource(
        "nodes",
        "Node",
        "/api/v1/nodes",
        singular="node",
        namespaced=False,
        short_names=("no",),
    ),
    APIResource(
        "pods",
        "Pod",
        "/api/v1/namespaces/{}/pods",
        singular="pod",
        short_names=("po",),
        categories=("all",),
    ),
    APIResource("pods/log", "Pod", "/api/v1/namespaces/{}/pods/{}/log", verbs=("get",)),
    APIResource("pods/status", "Pod", "/api/v1/namespaces/{}/pods/{}/status", verbs=("get",)),
)

_VARIABLE = re.compile(r"\{[^}]*\}")

# Go's names for the machine, as GOARCH spells them in ``platform``.
_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
}


def version_info() -> dict[str, str]:
    """``/version``: the agent's version in the form a kubelet reports its own."""
    major, minor, *_ = [*__version__.split("."), "0", "0"]
    machine = platform.machine().lower()
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{__version__}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "",
        "platform": f"{platform.system().lower()}/{_GOARCH.get(machine, machine)}",
    }


def served(app: web.Application) -> list[APIResource]:
    routes = {_VARIABLE.sub("{}", r.canonical) for r in app.router.resources()}
    return [r for r in RESOURCES if r.route in routes]


async def _send(request: web.Request, body: Mapping[str, object]) -> web.StreamResponse:
    return await send_body(
        request,
        json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        timeout=request.app[LIMITS].write_timeout,
    )


async def api_versions(request: web.Request) -> web.StreamResponse:
    return await _send(
        request,
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host},
            ],
        },
    )


async def api_groups(request: web.Request) -> web.StreamResponse:
    return await _send(request, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})


async def core_resources(request: web.Request) -> web.StreamResponse:
    return await _send(
        request,
        {
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [r.to_api() for r in served(request.app)],
        },
    )


async def version(request: web.Request) -> web.StreamResponse:
    return await _send(request, version_info())


async def no_openapi(request: web.Request) -> web.StreamResponse:
    raise StatusError(404, "the server could not find the requested resource")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api", api_versions)
    app.router.add_get("/api/", api_versions)
    app.router.add_get("/apis", api_groups)
    app.router.add_get("/apis/", api_groups)
    app.router.add_get("/api/v1", core_resources)
    app.router.add_get("/api/v1/", core_resources)
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)
    app.router.add_get("/openapi/{tail:.*}", no_openapi)
