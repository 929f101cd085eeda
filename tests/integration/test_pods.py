"""Foundation: manifests become real pods on Docker, visible at /pods."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from minikubelet.model import naming
from tests.integration.conftest import IMAGE, ROOT, Agent, pod_manifest, sh, wait_until

pytestmark = pytest.mark.docker


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return str(resp.read().decode())


def test_two_containers_share_localhost_and_an_empty_dir(agent: Agent) -> None:
    agent.write(
        "web.yaml",
        pod_manifest(
            "web",
            [
                {
                    "name": "server",
                    "image": IMAGE,
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                    "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                },
                sh(
                    "client",
                    "echo shared-by-emptydir > /data/index.html; "
                    "while ! wget -q -O /data/fetched http://127.0.0.1:8080/index.html; "
                    "do sleep 0.1; done; "
                    "sleep 3600 & wait",
                    volumeMounts=[{"name": "www", "mountPath": "/data"}],
                ),
            ],
            volumes=[{"name": "www", "emptyDir": {}}],
        ),
    )
    pod = agent.wait_running("web")
    uid = pod["metadata"]["uid"]
    host_dir = agent.state / "pods" / uid / "volumes" / "kubernetes.io~empty-dir" / "www"
    fetched = wait_until(
        lambda: (host_dir / "fetched").exists() and (host_dir / "fetched").read_text(),
        timeout=10,
        what="the client to fetch",
    )
    assert fetched == "shared-by-emptydir\n"
    # The pod's IP answers from the host too.
    assert http_get(f"http://{pod['status']['podIP']}:8080/index.html") == "shared-by-emptydir\n"
    # Docker reads like a kubelet node.
    names = sorted(c["Names"][0].lstrip("/") for c in agent.containers())
    full = pod["metadata"]["name"]
    assert names == sorted(
        [
            f"k8s_POD_{full}_default_{uid}_0",
            f"k8s_server_{full}_default_{uid}_0",
            f"k8s_client_{full}_default_{uid}_0",
        ]
    )
    server = agent.container_of(pod, "server")
    sandbox_id = server["Config"]["Labels"][naming.SANDBOX_ID]
    assert server["HostConfig"]["NetworkMode"] == f"container:{sandbox_id}"
    assert server["HostConfig"]["IpcMode"] == f"container:{sandbox_id}"
    assert server["HostConfig"]["PidMode"] == ""  # own PID namespace unless shareProcessNamespace
    status = pod["status"]
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert status["hostIP"]
    assert status["startTime"]
    for cs in status["containerStatuses"]:
        assert cs["ready"]
        assert cs["started"]
        assert cs["imageID"].startswith("docker://sha256:")
        assert cs["containerID"].startswith("docker://")


def test_two_pods_get_distinct_ips(agent: Agent) -> None:
    for name in ("one", "two"):
        serve = f"mkdir -p /srv && echo served-by-{name} > /srv/index.html"
        serve += " && exec httpd -f -p 80 -h /srv"
        agent.write(
            f"{name}.yaml",
            pod_manifest(name, [{"name": "web", "image": IMAGE, "command": ["sh", "-c", serve]}]),
        )
    one = agent.wait_running("one")
    two = agent.wait_running("two")
    ips = {one["status"]["podIP"], two["status"]["podIP"]}
    assert len(ips) == 2
    for ip in ips:
        assert ip.startswith("10.218.")

    # One pod reaches the other over the pod network; httpd may still be binding.
    def fetch() -> str:
        url = f"http://{two['status']['podIP']}/"
        # Debian's busybox-static wget segfaults on -T, so bound it with timeout(1).
        return agent.exec(one, "web", "timeout", "2", "wget", "-q", "-O", "-", url)

    out = wait_until(fetch, timeout=10, what="pod one fetching from pod two")
    assert out.strip() == "served-by-two"


def test_host_path_and_memory_volumes(agent: Agent, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    agent.write(
        "vols.yaml",
        pod_manifest(
            "vols",
            [
                sh(
                    "writer",
                    "echo from-pod > /host/out.txt; echo in-memory > /mem/note; sleep 3600 & wait",
                    volumeMounts=[
                        {"name": "host", "mountPath": "/host"},
                        {"name": "mem", "mountPath": "/mem"},
                    ],
                ),
                sh(
                    "reader",
                    "sleep 3600 & wait",
                    volumeMounts=[{"name": "mem", "mountPath": "/shm", "readOnly": True}],
                ),
            ],
            volumes=[
                {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
                {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            ],
        ),
    )
    pod = agent.wait_running("vols")
    assert (
        wait_until(
            lambda: (host_dir / "out.txt").exists() and (host_dir / "out.txt").read_text(),
            timeout=10,
            what="hostPath write",
        )
        == "from-pod\n"
    )
    mounts = agent.exec(pod, "reader", "cat", "/proc/mounts")
    line = next(m for m in mounts.splitlines() if " /shm " in m)
    assert line.split()[2] == "tmpfs"
    assert " ro," in f" {line.split()[3]}," or line.split()[3].startswith("ro")
    assert (
        wait_until(
            lambda: agent.exec(pod, "reader", "cat", "/shm/note"), timeout=10, what="shared tmpfs"
        )
        == "in-memory\n"
    )
    df = agent.exec(pod, "reader", "df", "-k", "/shm").splitlines()[-1].split()
    assert int(df[1]) == 8 * 1024  # sizeLimit became the tmpfs size


def test_host_path_type_check_fails_the_mount(agent: Agent, tmp_path: Path) -> None:
    agent.write(
        "missing.yaml",
        pod_manifest(
            "missing",
            [sh("c", "sleep 3600")],
            volumes=[
                {"name": "h", "hostPath": {"path": str(tmp_path / "absent"), "type": "Directory"}}
            ],
        ),
    )
    agent.wait_pod("missing", lambda p: p["status"]["phase"] == "Pending", what="pending pod")
    failed = agent.wait_event(name="missing", reason="FailedMount")
    assert failed["type"] == "Warning"
    assert f"{tmp_path / 'absent'} does not exist" in failed["message"]
    assert not agent.containers(**{naming.DOCKER_TYPE: "container"})


def test_env_field_refs_and_expansion(agent: Agent) -> None:
    agent.write(
        "env.yaml",
        pod_manifest(
            "env",
            [
                sh(
                    "show",
                    "env > /dev/termination-log; sleep 3600 & wait",
                    env=[
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_NS",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {
                            "name": "POD_UID",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {
                            "name": "HOST_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
                        },
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {
                            "name": "GREETING",
                            "value": "hello $(POD_NAME) at $(POD_IP), $(UNDEFINED)",
                        },
                    ],
                    args=["$(GREETING)"],
                )
            ],
        ),
    )
    pod = agent.wait_running("env")
    env = dict(
        line.split("=", 1) for line in agent.exec(pod, "show", "env").splitlines() if "=" in line
    )
    name = pod["metadata"]["name"]
    ip = pod["status"]["podIP"]
    assert env["POD_NAME"] == name
    assert env["POD_NS"] == "default"
    assert env["POD_UID"] == pod["metadata"]["uid"]
    assert env["POD_IP"] == ip
    assert env["HOST_IP"] == pod["status"]["hostIP"]
    assert env["NODE"] == agent.node
    assert env["GREETING"] == f"hello {name} at {ip}, $(UNDEFINED)"
    assert agent.container_of(pod, "show")["Args"][-1] == f"hello {name} at {ip}, $(UNDEFINED)"


def test_resources_and_security_context_reach_docker(agent: Agent) -> None:
    agent.write(
        "sec.yaml",
        pod_manifest(
            "sec",
            [
                sh(
                    "app",
                    "sleep 3600 & wait",
                    volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                    resources={
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                        "requests": {"cpu": "250m"},
                    },
                    securityContext={
                        "runAsUser": 1000,
                        "runAsGroup": 3000,
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                    },
                ),
                # Some engines (in unprivileged sandboxes) cannot start a privileged
                # container; what the agent asked for shows in inspect either way.
                sh("priv", "sleep 3600 & wait", securityContext={"privileged": True}),
            ],
            securityContext={
                "fsGroup": 2000,
                "supplementalGroups": [4000],
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}],
            },
            hostAliases=[{"ip": "10.9.9.9", "hostnames": ["db.example"]}],
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
    )

    def app_running_priv_created(pod: dict[str, Any]) -> bool:
        statuses = {s["name"]: s for s in pod["status"].get("containerStatuses", [])}
        return "running" in statuses.get("app", {}).get(
            "state", {}
        ) and "containerID" in statuses.get("priv", {})

    pod = agent.wait_pod("sec", app_running_priv_created)
    app = agent.container_of(pod, "app")
    hc = app["HostConfig"]
    assert hc["NanoCpus"] == 0
    assert hc["CpuQuota"] == 50000
    assert hc["CpuPeriod"] == 100000
    assert hc["CpuShares"] == 256
    assert hc["Memory"] == 64 * 2**20
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapAdd"] == ["NET_ADMIN"]
    assert hc["CapDrop"] == ["MKNOD"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert sorted(hc["GroupAdd"]) == ["2000", "4000"]
    assert app["Config"]["User"] == "1000:3000"
    ids = agent.exec(pod, "app", "id")
    assert "uid=1000" in ids
    assert "gid=3000" in ids
    assert "2000" in ids
    assert agent.container_of(pod, "priv")["HostConfig"]["Privileged"] is True
    sandbox = agent.api.inspect_container(app["Config"]["Labels"][naming.SANDBOX_ID])
    assert sandbox["HostConfig"]["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80"}
    hosts = agent.exec(pod, "app", "cat", "/etc/hosts")
    assert "10.9.9.9\tdb.example" in hosts
    assert f"{pod['status']['podIP']}\t{pod['metadata']['name']}" in hosts
    assert agent.exec(pod, "app", "hostname").strip() == pod["metadata"]["name"]
    # fsGroup owns the pod's volumes, with the setgid bit so new files inherit it.
    assert agent.exec(pod, "app", "stat", "-c", "%g %A", "/scratch").split() == [
        "2000",
        "drwxrwsrwx",
    ]


def test_host_port_is_published(agent: Agent) -> None:
    port = 20000 + os.getpid() % 10000
    agent.write(
        "hp.yaml",
        pod_manifest(
            "hp",
            [
                {
                    "name": "web",
                    "image": IMAGE,
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/etc"],
                    "ports": [{"containerPort": 8080, "hostPort": port, "hostIP": "127.0.0.1"}],
                }
            ],
        ),
    )
    agent.wait_running("hp")
    assert "root:x:0:0" in wait_until(
        lambda: http_get(f"http://127.0.0.1:{port}/passwd"), timeout=10, what="the host port"
    )


def test_image_never_pulled_waits_with_reason(agent: Agent) -> None:
    agent.write(
        "nopull.yaml",
        pod_manifest(
            "nopull",
            [{"name": "c", "image": "localhost/absent/image:1", "imagePullPolicy": "Never"}],
        ),
    )
    pod = agent.wait_pod(
        "nopull",
        lambda p: (
            "waiting" in p["status"]["containerStatuses"][0]["state"]
            and p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "ErrImageNeverPull"
        ),
        what="ErrImageNeverPull",
    )
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert (
        waiting["message"]
        == 'Container image "localhost/absent/image:1" is not present with pull policy of Never'
    )
    assert pod["status"]["phase"] == "Pending"


def test_changed_file_is_a_new_pod_and_removal_cleans_up(agent: Agent) -> None:
    manifest = pod_manifest(
        "app",
        [
            sh(
                "c",
                "echo data > /d/f; sleep 3600 & wait",
                volumeMounts=[{"name": "d", "mountPath": "/d"}],
            )
        ],
        volumes=[{"name": "d", "emptyDir": {}}],
    )
    agent.write("app.yaml", manifest)
    first = agent.wait_running("app")
    first_uid = first["metadata"]["uid"]
    first_ids = {c["Id"] for c in agent.containers()}
    data = agent.state / "pods" / first_uid / "volumes" / "kubernetes.io~empty-dir" / "d" / "f"
    wait_until(data.exists, timeout=10, what="emptyDir data")
    # A comment changes nothing.
    agent.write("app.yaml", "# just a comment\n" + (agent.manifests / "app.yaml").read_text())
    agent.sync_manifests()
    assert agent.pod("app")["metadata"]["uid"] == first_uid  # type: ignore[index]
    assert {c["Id"] for c in agent.containers()} == first_ids
    # A real edit is a new pod: new uid, new containers, the old ones gone.
    manifest["metadata"]["labels"] = {"version": "2"}
    agent.write("app.yaml", manifest)
    second = agent.wait_pod(
        "app",
        lambda p: p["metadata"]["uid"] != first_uid and p["status"]["phase"] == "Running",
        what="the new pod",
    )
    wait_until(
        lambda: not (first_ids & {c["Id"] for c in agent.containers()}),
        timeout=10,
        what="old containers removed",
    )
    # The directory goes after the containers, as on the kubelet: wait for it.
    wait_until(lambda: not data.exists(), timeout=10, what="the old pod's emptyDir data gone")
    # Removal: containers and emptyDir data gone.
    second_uid = second["metadata"]["uid"]
    agent.remove("app.yaml")
    wait_until(lambda: not agent.containers(), timeout=10, what="no container left")
    second_dir = agent.state / "pods" / second_uid
    wait_until(lambda: not second_dir.exists(), timeout=10, what="the pod's directory gone")
    assert agent.pod("app") is None


def test_bad_manifests_are_reported_and_others_run_on(agent: Agent) -> None:
    agent.write("good.yaml", pod_manifest("good", [sh("c", "sleep 3600 & wait")]))
    good = agent.wait_running("good")
    ids = {c["Id"] for c in agent.containers()}
    agent.write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: broken\n")
    agent.write(
        "invalid.yaml",
        pod_manifest(
            "invalid",
            [{"name": "c", "image": IMAGE, "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}],
        ),
    )
    agent.write("dup.yaml", pod_manifest("good", [sh("other", "sleep 1")]))

    def errors() -> list[dict[str, Any]] | None:
        found = agent.pod_list()["errors"]
        return found if len(found) >= 3 else None

    found = wait_until(errors, timeout=10, what="three reported errors")
    by_file = {Path(e["file"]).name: e for e in found}
    assert by_file["broken.yaml"]["message"].startswith("invalid YAML at line")
    assert by_file["invalid.yaml"]["field"] == "spec.containers[0].volumeMounts[0].name"
    assert by_file["dup.yaml"]["field"] == "metadata.name"
    assert "already defined by" in by_file["dup.yaml"]["message"]
    # Each is also a Warning event on the node, naming its file.
    for filename in by_file:
        event = agent.wait_event(kind="Node", reason="FailedValidation", message=filename)
        assert event["type"] == "Warning"
        assert event["involvedObject"]["name"] == agent.node
    # The good pod is untouched.
    assert {c["Id"] for c in agent.containers()} == ids
    assert agent.pod("good")["metadata"]["uid"] == good["metadata"]["uid"]  # type: ignore[index]
    # A good edit of a broken file makes it a pod; the bad one's error goes.
    agent.write("invalid.yaml", pod_manifest("invalid", [sh("c", "sleep 3600 & wait")]))
    agent.wait_running("invalid")
    wait_until(
        lambda: all(Path(e["file"]).name != "invalid.yaml" for e in agent.pod_list()["errors"]),
        timeout=10,
        what="error cleared",
    )


def test_offline_sandbox_image_is_built_locally(
    make_agent: Callable[..., Agent], docker_api: docker.APIClient, pause_image: str
) -> None:
    # Take the local image's name away so the agent must build it. Forced, because
    # sandboxes of other agents on this engine may still run from it; they keep
    # their (now untagged) image.
    docker_api.remove_image(pause_image, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_api.inspect_image(pause_image)  # type: ignore[no-untyped-call]
    agent = make_agent(infra_image="registry.invalid/pause:3.10")
    agent.write("p.yaml", pod_manifest("p", [sh("c", "sleep 3600 & wait")]))
    pod = agent.wait_running("p")
    sandbox_id = agent.container_of(pod, "c")["Config"]["Labels"][naming.SANDBOX_ID]
    sandbox = docker_api.inspect_container(sandbox_id)
    assert sandbox["Config"]["Image"] == pause_image
    assert sandbox["State"]["Running"]
    assert sandbox["Path"] == "/pause"
    with pytest.raises(docker.errors.ImageNotFound):
        docker_api.inspect_image("registry.invalid/pause:3.10")  # type: ignore[no-untyped-call]
    # The sandbox's pause stops at once on SIGTERM, like Kubernetes' pause.
    started = time.monotonic()
    docker_api.stop(sandbox_id, timeout=10)
    assert time.monotonic() - started < 5


def test_validate_command(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n"
        "spec: {containers: [{name: c, image: busybox:1}]}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad}\n"
        "spec: {containers: [{name: c}], restartPolicy: Sometimes}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "minikubelet", "validate", "--node-name", "n1", str(good), str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert f"{good}: ok (pod default/ok-n1)" in lines
    assert (
        f'{bad}: spec.restartPolicy: unsupported value: must be "Always", "OnFailure" or "Never"'
        in lines
    )
    assert any(
        line.startswith(f"{bad}: metadata.name: must be a lowercase RFC 1123 subdomain")
        for line in lines
    )
    assert f"{bad}: spec.containers[0].image: required value" in lines
    ok = subprocess.run(
        [sys.executable, "-m", "minikubelet", "validate", str(good)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0
