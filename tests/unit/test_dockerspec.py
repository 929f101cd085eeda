"""Docker create bodies for sandboxes and containers (no Docker)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from minikubelet.errors import CreateContainerConfigError
from minikubelet.model import naming
from minikubelet.model.expand import expand
from minikubelet.model.spec import Pod
from minikubelet.runtime.dockerspec import (
    ContainerParams,
    HostDNS,
    HostMount,
    NodeResources,
    SandboxParams,
    container_create_body,
    hosts_file,
    resolve_env,
    sandbox_create_body,
)
from tests.unit.helpers import make_pod


def params(pod: Pod, name: str = "a", **kw: Any) -> ContainerParams:
    container = pod.spec.container(name)
    assert container is not None
    defaults: dict[str, Any] = {
        "pod": pod,
        "container": container,
        "node_name": "node",
        "sandbox_id": "sb123",
        "restart_count": 2,
        "pod_ip": "10.0.0.7",
        "host_ip": "192.0.2.2",
        "node": NodeResources(cpu_milli=2000, memory=8 << 30),
    }
    defaults.update(kw)
    return ContainerParams(**defaults)


def sandbox_params(pod: Pod, **kw: Any) -> SandboxParams:
    defaults: dict[str, Any] = {
        "pod": pod,
        "node_name": "node",
        "image": "pause:1",
        "network": "podnet",
        "pod_ip": "10.0.0.7",
        "attempt": 1,
        "start_time": 0.0,
    }
    defaults.update(kw)
    return SandboxParams(**defaults)


def test_sandbox_names_labels_and_namespaces() -> None:
    pod = make_pod(("a",), extra={"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"]}]})
    name, body = sandbox_create_body(sandbox_params(pod))
    assert name == f"k8s_POD_{pod.name}_default_{pod.uid}_1"
    labels = body["Labels"]
    assert labels[naming.DOCKER_TYPE] == "podsandbox"
    assert labels[naming.CONTAINER_NAME] == "POD"
    assert labels[naming.POD_UID] == pod.uid
    assert labels[naming.NODE] == "node"
    assert labels[naming.POD_IP] == "10.0.0.7"
    assert labels["annotation." + naming.CONFIG_SOURCE] == "file"
    hc = body["HostConfig"]
    assert hc["NetworkMode"] == "podnet"
    assert hc["IpcMode"] == "shareable"
    assert hc["OomScoreAdj"] == -998
    assert body["Hostname"] == pod.name
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {"podnet": {"IPAMConfig": {"IPv4Address": "10.0.0.7"}}}
    }


def test_sandbox_host_namespaces_ports_and_sysctls() -> None:
    pod = make_pod(
        ("a",),
        extra={
            "hostNetwork": True,
            "hostPID": True,
            "hostIPC": True,
            "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]},
        },
        container_extra={"a": {"ports": [{"containerPort": 80}]}},
    )
    _, body = sandbox_create_body(sandbox_params(pod, pod_ip=""))
    hc = body["HostConfig"]
    assert hc["NetworkMode"] == "host"
    assert hc["PidMode"] == "host"
    assert hc["IpcMode"] == "host"
    assert hc["Sysctls"] == {"kernel.shm_rmid_forced": "1"}
    assert "Hostname" not in body
    assert "NetworkingConfig" not in body
    assert "PortBindings" not in hc  # host network: the port is the host's already


def test_sandbox_publishes_host_ports() -> None:
    pod = make_pod(
        ("a",),
        container_extra={
            "a": {
                "ports": [
                    {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
                    {"containerPort": 53, "protocol": "UDP", "hostPort": 5353},
                ]
            }
        },
    )
    _, body = sandbox_create_body(sandbox_params(pod))
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": "5353"}],
    }
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}


def test_sandbox_dns_none_policy() -> None:
    pod = make_pod(
        ("a",),
        extra={
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
            },
        },
    )
    _, body = sandbox_create_body(
        sandbox_params(pod, host_dns=HostDNS(("8.8.8.8",), ("host.example",), ("ndots:5",)))
    )
    hc = body["HostConfig"]
    assert hc["Dns"] == ["1.1.1.1"]
    assert hc["DnsSearch"] == ["a.example"]
    assert hc["DnsOptions"] == ["ndots:2", "edns0"]


def test_sandbox_dns_config_merges_with_host() -> None:
    pod = make_pod(
        ("a",),
        extra={
            "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}
        },
    )
    _, body = sandbox_create_body(
        sandbox_params(pod, host_dns=HostDNS(("8.8.8.8",), ("host.example",), ("ndots:5",)))
    )
    hc = body["HostConfig"]
    assert hc["Dns"] == ["8.8.8.8", "1.1.1.1"]
    assert hc["DnsSearch"] == ["host.example"]
    assert hc["DnsOptions"] == ["ndots:2"]


def test_container_namespaces_labels_and_command() -> None:
    pod = make_pod(
        ("a",),
        extra={"shareProcessNamespace": True, "terminationGracePeriodSeconds": 7},
        container_extra={
            "a": {
                "command": ["sh", "-c"],
                "args": ["echo $(GREETING) $(MISSING) $$(escaped)"],
                "env": [{"name": "GREETING", "value": "hi"}],
                "workingDir": "/w",
                "lifecycle": {"preStop": {"exec": {"command": ["stop"]}}},
                "ports": [{"containerPort": 80, "name": "http"}],
                "tty": True,
                "stdin": True,
            }
        },
    )
    name, body = container_create_body(
        params(pod, mounts=(HostMount("/h/x", "/x", read_only=True),), termination_log="/h/log")
    )
    assert name == f"k8s_a_{pod.name}_default_{pod.uid}_2"
    hc = body["HostConfig"]
    assert hc["NetworkMode"] == "container:sb123"
    assert hc["IpcMode"] == "container:sb123"
    assert hc["PidMode"] == "container:sb123"
    assert hc["RestartPolicy"] == {"Name": "no"}
    assert hc["Mounts"] == [
        {
            "Type": "bind",
            "Source": "/h/x",
            "Target": "/x",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rprivate"},
        }
    ]
    assert body["Entrypoint"] == ["sh", "-c"]
    assert body["Cmd"] == ["echo hi $(MISSING) $(escaped)"]
    assert body["WorkingDir"] == "/w"
    assert body["Tty"] is True
    assert body["OpenStdin"] is True
    assert body["Healthcheck"] == {"Test": ["NONE"]}
    labels = body["Labels"]
    assert labels[naming.DOCKER_TYPE] == "container"
    assert labels[naming.SANDBOX_ID] == "sb123"
    assert labels[naming.RESTART_COUNT] == "2"
    assert labels[naming.CONTAINER_HASH] == pod.spec.containers[0].spec_hash
    assert labels[naming.POD_GRACE_PERIOD] == "7"
    assert labels[naming.PRE_STOP_HANDLER] == '{"exec": {"command": ["stop"]}}'
    assert labels[naming.TERMINATION_LOG] == "/h/log"
    assert "app" not in labels  # pod labels stay on the sandbox


def test_args_only_keeps_image_entrypoint() -> None:
    pod = make_pod(("a",), container_extra={"a": {"args": ["x"]}})
    _, body = container_create_body(params(pod))
    assert "Entrypoint" not in body
    assert body["Cmd"] == ["x"]


def test_env_field_refs_and_expansion() -> None:
    pod = make_pod(
        ("a",),
        container_extra={
            "a": {
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "env": [
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {
                        "name": "CPU",
                        "valueFrom": {
                            "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                        },
                    },
                    {
                        "name": "MEM",
                        "valueFrom": {
                            "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
                        },
                    },
                    {"name": "URL", "value": "http://$(IP):80/$(NAME)"},
                    {"name": "LATER", "value": "$(DEFINED_AFTER)"},
                    {"name": "DEFINED_AFTER", "value": "x"},
                ],
            }
        },
    )
    env = dict(resolve_env(params(pod)))
    assert env["NAME"] == pod.name
    assert env["NS"] == "default"
    assert env["UID"] == pod.uid
    assert env["IP"] == "10.0.0.7"
    assert env["HOST"] == "192.0.2.2"
    assert env["NODE"] == "node"
    assert env["CPU"] == "500"
    assert env["MEM"] == "64"
    assert env["URL"] == f"http://10.0.0.7:80/{pod.name}"
    assert env["LATER"] == "$(DEFINED_AFTER)"  # only earlier variables expand


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("$(A)$(B)", "12"),
        ("$$(A)", "$(A)"),
        ("$(C)", "$(C)"),
        ("$A", "$A"),
        ("$(A", "$(A"),
        ("x$", "x$"),
        ("$$$(A)", "$1"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}.get) == expected


def test_resources_map_to_cgroup_settings() -> None:
    pod = make_pod(
        ("a",),
        container_extra={
            "a": {
                "resources": {
                    "limits": {"cpu": "250m", "memory": "128Mi"},
                    "requests": {"cpu": "100m"},
                }
            }
        },
    )
    _, body = container_create_body(params(pod))
    hc = body["HostConfig"]
    assert hc["CpuShares"] == 102
    assert hc["CpuPeriod"] == 100000
    assert hc["CpuQuota"] == 25000
    assert hc["Memory"] == 128 << 20
    assert hc["MemorySwap"] == 128 << 20


def test_no_resources_get_minimum_shares() -> None:
    _, body = container_create_body(params(make_pod(("a",))))
    assert body["HostConfig"]["CpuShares"] == 2
    assert "Memory" not in body["HostConfig"]


def test_security_context() -> None:
    pod = make_pod(
        ("a",),
        extra={
            "securityContext": {
                "runAsUser": 1000,
                "fsGroup": 2000,
                "supplementalGroups": [3000],
                "runAsGroup": 10,
            }
        },
        container_extra={
            "a": {
                "securityContext": {
                    "runAsUser": 1001,
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                }
            }
        },
    )
    _, body = container_create_body(params(pod))
    hc = body["HostConfig"]
    assert body["User"] == "1001:10"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapAdd"] == ["NET_ADMIN"]
    assert hc["CapDrop"] == ["ALL"]
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["GroupAdd"] == ["3000", "2000"]


def test_privileged() -> None:
    pod = make_pod(("a",), container_extra={"a": {"securityContext": {"privileged": True}}})
    _, body = container_create_body(params(pod))
    assert body["HostConfig"]["Privileged"] is True


@pytest.mark.parametrize(
    ("pod_sc", "container_sc", "image_user", "message"),
    [
        ({"runAsNonRoot": True}, {"runAsUser": 0}, "", "runAsUser breaks non-root policy"),
        ({"runAsNonRoot": True}, {}, "", "image will run as root"),
        ({}, {"runAsNonRoot": True}, "root", "image will run as root"),
        ({"runAsNonRoot": True}, {}, "nginx", "non-numeric user (nginx)"),
    ],
    ids=["explicit-root", "image-root", "image-root-by-name", "image-named-user"],
)
def test_run_as_non_root_refuses_root(
    pod_sc: dict[str, Any], container_sc: dict[str, Any], image_user: str, message: str
) -> None:
    pod = make_pod(
        ("a",),
        extra={"securityContext": pod_sc},
        container_extra={"a": {"securityContext": container_sc}},
    )
    with pytest.raises(CreateContainerConfigError, match=re.escape(message)):
        container_create_body(params(pod, image_user=image_user))


def test_run_as_non_root_accepts_numeric_image_user() -> None:
    pod = make_pod(("a",), extra={"securityContext": {"runAsNonRoot": True}})
    _, body = container_create_body(params(pod, image_user="1000:1000"))
    assert "User" not in body  # the image's user stays


def test_hosts_file() -> None:
    text = hosts_file(
        pod_ip="10.0.0.7", hostname="web", aliases=[("1.2.3.4", ("a.example", "b.example"))]
    )
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.0.0.7\tweb" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "1.2.3.4\ta.example\tb.example"]


def test_no_oom_score_where_not_allowed() -> None:
    pod = make_pod(("a",))
    _, body = container_create_body(params(pod, oom_score_adj=None))
    assert "OomScoreAdj" not in body["HostConfig"]
    _, body = sandbox_create_body(sandbox_params(pod, oom_score_adj=None))
    assert "OomScoreAdj" not in body["HostConfig"]
