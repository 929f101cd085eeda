"""``RealCluster``: the reads and acts of ``FakeApiServer`` on a real cluster.

When ``MINIKUBELET_TEST_KUBECONFIG`` names a kubeconfig, the ``apiserver`` fixture yields
this instead of the test server, so the same tests check the agent against a real
kube-apiserver. Credentials come from the kubeconfig through ``kubernetes_asyncio``'s
loader (tokens, token files, client certificates, exec plugins, as the agent reads it);
requests are plain HTTPS. What only the test server can do (faults, its request log)
skips the test that asks for it, saying why.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from tests.apiserver.store import Obj, Rejection, find_resource

ENV = "MINIKUBELET_TEST_KUBECONFIG"


class RealClusterError(Exception):
    def __init__(self, code: int, body: str) -> None:
        super().__init__(f"{code}: {body}")
        self.code = code


class RealCluster:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.config = k8s.Configuration()
        asyncio.run(
            k8s_config.load_kube_config(
                config_file=str(kubeconfig), client_configuration=self.config
            )
        )
        self.url = str(self.config.host).rstrip("/")
        self.context = ssl.create_default_context(cafile=self.config.ssl_ca_cert or None)
        if self.config.cert_file:
            self.context.load_cert_chain(self.config.cert_file, self.config.key_file)
        if not self.config.verify_ssl:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    # The FakeApiServer lifecycle: a real cluster is already there.
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def write_kubeconfig(self, path: Path, *, auth: str = "token") -> Path:
        """The kubeconfig given, whatever ``auth`` asks: its credentials are the cluster's."""
        return self.kubeconfig

    def _path(
        self, resource: str, name: str = "", namespace: str | None = None, sub: str = ""
    ) -> str:
        res = find_resource(resource)
        base = f"/apis/{res.group}/v1" if res.group else "/api/v1"
        if res.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        parts = [base, res.plural, *([name] if name else []), *([sub] if sub else [])]
        return "/".join(parts)

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if content_type:
            request.add_header("Content-Type", content_type)
        # The loader's key for a kubeconfig's token (its refresh hook renews exec tokens).
        auth = asyncio.run(self.config.get_api_key_with_prefix("BearerToken"))
        if auth:
            # A token file's newline stays in the loader's value; client-go trims it.
            request.add_header("Authorization", str(auth).strip())
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            with e:  # closed here, not by the collector with a ResourceWarning
                raise RealClusterError(e.code, e.read().decode(errors="replace")) from None

    def get(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            found: Obj = self._call("GET", self._path(resource, name, namespace))
        except RealClusterError as e:
            if e.code == 404:
                return None
            raise
        return found

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[Obj]:
        items: list[Obj] = self._call("GET", self._path(resource, "", namespace))["items"]
        return items

    def delete(
        self, resource: str, name: str, namespace: str | None = None, *, grace: int | None = None
    ) -> None:
        options = {} if grace is None else {"gracePeriodSeconds": grace}
        self._call("DELETE", self._path(resource, name, namespace), options, "application/json")

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
        path = self._path(resource, name, namespace, subresource or "")
        result: Obj = self._call("PATCH", path, patch, content_type)
        return result

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        result: Obj = self._call("POST", self._path(resource, "", ns), obj, "application/json")
        return result

    @property
    def rejected(self) -> builtins.list[Rejection]:
        """A real server keeps no list; what it refuses, the agent's requests see."""
        return []

    # --- what only the test server can do ----------------------------------------------

    def _skip(self, what: str) -> NoReturn:
        pytest.skip(f"{what} needs the test API server, not the real cluster of ${ENV}")

    def request_log(self) -> NoReturn:
        self._skip("the request log")

    @property
    def requests(self) -> NoReturn:
        self._skip("the request log")

    def go_down(self) -> NoReturn:
        self._skip("taking the API server down")

    def come_up(self) -> NoReturn:
        self._skip("taking the API server down")

    def fail_next(self, status: int, **_: Any) -> NoReturn:
        self._skip("fault injection")

    @property
    def latency(self) -> float:
        return 0.0

    @latency.setter
    def latency(self, value: float) -> None:
        if value:
            self._skip("added latency")
