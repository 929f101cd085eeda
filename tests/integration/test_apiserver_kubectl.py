"""kubectl against the test API server: discovery, auth, Tables and STATUS as a cluster shows them.

The objects are made through the server itself (as the agent in cluster mode would make
them); kubectl (1.32 here, Debian's 1.20 in CI) reads them with a kubeconfig written by
the server, over TLS with a bearer token and with a client certificate.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.apiserver import FakeApiServer

NODE = "kubectl-node"


def kubectl(binary: str, kubeconfig: Path, *args: str) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(kubeconfig.parent),
        "KUBECONFIG": str(kubeconfig),
    }
    done = subprocess.run(
        [binary, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def rows(text: str) -> list[dict[str, str]]:
    """kubectl's table as one {COLUMN: cell} per row; columns are two or more spaces apart
    (a header of two words, NOMINATED NODE, has one)."""
    header, *lines = (re.split(r"\s{2,}", line.strip()) for line in text.splitlines())
    for cells in lines:
        assert len(cells) == len(header), f"{header} vs {cells}"
    return [dict(zip(header, cells, strict=True)) for cells in lines]


def by_name(table: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["NAME"]: row for row in table}


def running_status(ready: bool) -> dict[str, Any]:
    return {
        "phase": "Running",
        "podIP": "10.1.2.3",
        "podIPs": [{"ip": "10.1.2.3"}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [
            {
                "name": "c",
                "image": "busybox",
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
            }
        ],
    }


def make_pod(server: FakeApiServer, name: str, namespace: str = "default") -> None:
    server.create(
        "pods",
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]},
        },
    )


@pytest.fixture
def cluster(apiserver: FakeApiServer) -> FakeApiServer:
    if not isinstance(apiserver, FakeApiServer):
        pytest.skip("tests the test API server itself, not a real cluster")
    server = apiserver
    server.create(
        "nodes",
        {
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "192.0.2.7"}],
                "nodeInfo": {
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": "6.1.0",
                    "osImage": "Debian GNU/Linux 12",
                    "containerRuntimeVersion": "docker://27.0.0",
                    "kubeletVersion": "v1.32.0",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        },
    )
    make_pod(server, f"web-{NODE}")
    server.patch(
        "pods", f"web-{NODE}", {"status": running_status(True)}, "default", subresource="status"
    )
    make_pod(server, f"db-{NODE}", "kube-system")
    server.patch(
        "pods", f"db-{NODE}", {"status": running_status(False)}, "kube-system", subresource="status"
    )
    make_pod(server, f"new-{NODE}")
    make_pod(server, f"old-{NODE}")
    server.delete("pods", f"old-{NODE}", "default")  # bound, grace 30: Terminating
    server.create(
        "leases",
        {
            "metadata": {"name": NODE, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": NODE,
                "leaseDurationSeconds": 40,
                "renewTime": "2025-01-01T00:00:00.000000Z",
            },
        },
    )
    return server


@pytest.mark.parametrize("auth", ["token", "cert"])
def test_kubectl_lists_nodes_pods_and_leases(
    cluster: FakeApiServer, kubectl_bin: str, tmp_path: Path, auth: str
) -> None:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig", auth=auth)

    nodes = rows(kubectl(kubectl_bin, config, "get", "nodes"))
    assert list(nodes[0]) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert by_name(nodes)[NODE] | {"AGE": ""} == {
        "NAME": NODE,
        "STATUS": "Ready",
        "ROLES": "<none>",
        "AGE": "",
        "VERSION": "v1.32.0",
    }

    pods = by_name(rows(kubectl(kubectl_bin, config, "get", "pods", "-A", "-o", "wide")))
    shown = {name: (p["NAMESPACE"], p["READY"], p["STATUS"]) for name, p in pods.items()}
    assert shown == {
        f"web-{NODE}": ("default", "1/1", "Running"),
        f"db-{NODE}": ("kube-system", "0/1", "Running"),
        f"new-{NODE}": ("default", "0/1", "Pending"),
        f"old-{NODE}": ("default", "0/1", "Terminating"),
    }
    assert (pods[f"web-{NODE}"]["IP"], pods[f"web-{NODE}"]["NODE"]) == ("10.1.2.3", NODE)

    leases = rows(kubectl(kubectl_bin, config, "get", "lease", "-n", "kube-node-lease"))
    assert [(lease["NAME"], lease["HOLDER"]) for lease in leases] == [(NODE, NODE)]
    assert cluster.rejected == []
