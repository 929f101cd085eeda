"""Docker Engine API create bodies for a pod's sandbox and containers: pure.

This is cri-dockerd's translation of the CRI config (core/sandbox_helpers.go,
container_create.go, security_context.go) from a typed pod to the JSON that
``POST /containers/create`` takes. Keeping it pure means resources, security
and namespaces are unit-tested without an engine, and the engine receives
exactly what the tests saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minikubelet.errors import CreateContainerConfigError
from minikubelet.model import naming
from minikubelet.model.expand import expand
from minikubelet.model.quantity import parse_quantity
from minikubelet.model.spec import Container, Pod
from minikubelet.util.timefmt import rfc3339

# Static pods are critical pods: kubelet gives their containers the
# guaranteed OOM score whatever their QoS class, and the sandbox a lower one.
CONTAINER_OOM_SCORE_ADJ = -997
SANDBOX_OOM_SCORE_ADJ = -998
SANDBOX_CPU_SHARES = 2
MIN_CPU_SHARES = 2
CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1000
NO_HEALTHCHECK = {"Test": ["NONE"]}
_PROPAGATION = {"None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}


@dataclass(frozen=True, slots=True)
class HostMount:
    source: str
    target: str
    read_only: bool = False
    propagation: str = "None"

    def to_api(self) -> dict[str, Any]:
        return {
            "Type": "bind",
            "Source": self.source,
            "Target": self.target,
            "ReadOnly": self.read_only,
            "BindOptions": {"Propagation": _PROPAGATION.get(self.propagation, "rprivate")},
        }


@dataclass(frozen=True, slots=True)
class HostDNS:
    """The node's resolver settings (from /etc/resolv.conf), merged into dnsConfig."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeResources:
    """Allocatable CPU and memory: what ``resourceFieldRef`` reports without a limit."""

    cpu_milli: int
    memory: int


@dataclass(frozen=True, slots=True)
class SandboxParams:
    pod: Pod
    node_name: str
    image: str
    network: str
    pod_ip: str
    attempt: int
    start_time: float
    host_dns: HostDNS = field(default_factory=HostDNS)
    # None where the engine may not lower OOM scores (no CAP_SYS_RESOURCE).
    oom_score_adj: int | None = SANDBOX_OOM_SCORE_ADJ


@dataclass(frozen=True, slots=True)
class ContainerParams:
    pod: Pod
    container: Container
    node_name: str
    sandbox_id: str
    restart_count: int
    pod_ip: str
    host_ip: str
    mounts: tuple[HostMount, ...] = ()
    termination_log: str = ""
    image_user: str = ""
    node: NodeResources = field(
        default_factory=lambda: NodeResources(cpu_milli=1000, memory=1 << 30)
    )
    oom_score_adj: int | None = CONTAINER_OOM_SCORE_ADJ
    backoff_delay: float | None = None


def container_kind(pod: Pod, container: Container) -> str:
    if any(c.name == container.name for c in pod.spec.init_containers):
        return "sidecar" if container.is_sidecar else "init"
    return "app"


def sandbox_labels(p: SandboxParams) -> dict[str, str]:
    pod = p.pod
    labels = dict(pod.labels)
    for key, value in pod.annotations.items():
        labels[naming.ANNOTATION_PREFIX + key] = value
    labels.update(
        {
            naming.POD_NAME: pod.name,
            naming.POD_NAMESPACE: pod.namespace,
            naming.POD_UID: pod.uid,
            naming.CONTAINER_NAME: naming.SANDBOX_CONTAINER_NAME,
            naming.DOCKER_TYPE: naming.TYPE_SANDBOX,
            naming.NODE: p.node_name,
            naming.SANDBOX_ATTEMPT: str(p.attempt),
            naming.POD_START_TIME: rfc3339(p.start_time),
            naming.POD_GRACE_PERIOD: str(pod.spec.termination_grace_period_seconds),
        }
    )
    if p.pod_ip:
        labels[naming.POD_IP] = p.pod_ip
    if pod.origin:
        labels[naming.CONFIG_ORIGIN] = pod.origin
    return labels


def _dns(pod: Pod, host: HostDNS) -> dict[str, Any]:
    spec = pod.spec
    config = spec.dns_config
    if spec.dns_policy == "None":
        servers: tuple[str, ...] = config.nameservers if config else ()
        searches: tuple[str, ...] = config.searches if config else ()
        options: list[str] = []
    elif config is None or spec.host_network:
        # Default (and ClusterFirst with no cluster DNS): the engine copies the node's resolv.conf.
        return {}
    else:
        servers = host.nameservers
        searches = host.searches
        options = list(host.options)
        servers = tuple(dict.fromkeys((*servers, *config.nameservers)))
        searches = tuple(dict.fromkeys((*searches, *config.searches)))
    if config is not None:
        for name, value in config.options:
            options = [o for o in options if o.split(":", 1)[0] != name]
            options.append(f"{name}:{value}" if value is not None else name)
    body: dict[str, Any] = {}
    if servers:
        body["Dns"] = list(servers[:3])
    if searches:
        body["DnsSearch"] = list(searches[:32])
    if options:
        body["DnsOptions"] = options
    return body


def sandbox_create_body(p: SandboxParams) -> tuple[str, dict[str, Any]]:
    pod = p.pod
    spec = pod.spec
    name = naming.sandbox_name(pod.name, pod.namespace, pod.uid, p.attempt)
    host_config: dict[str, Any] = {
        "NetworkMode": "host" if spec.host_network else p.network,
        "IpcMode": "host" if spec.host_ipc else "shareable",
        "CpuShares": SANDBOX_CPU_SHARES,
        "RestartPolicy": {"Name": "no"},
    }
    if p.oom_score_adj is not None:
        host_config["OomScoreAdj"] = p.oom_score_adj
    if spec.host_pid:
        host_config["PidMode"] = "host"
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    if not spec.host_network:
        for container in spec.containers + spec.init_containers:
            for port in container.ports:
                if not port.host_port:
                    continue
                key = f"{port.container_port}/{port.protocol.lower()}"
                exposed[key] = {}
                bindings.setdefault(key, []).append(
                    {"HostIp": port.host_ip, "HostPort": str(port.host_port)}
                )
    if bindings:
        host_config["PortBindings"] = bindings
    sysctls = dict(spec.security_context.sysctls)
    if sysctls:
        host_config["Sysctls"] = sysctls
    host_config.update(_dns(pod, p.host_dns))
    body: dict[str, Any] = {
        "Image": p.image,
        "Labels": sandbox_labels(p),
        "Healthcheck": NO_HEALTHCHECK,
        "HostConfig": host_config,
    }
    if not spec.host_network:
        # With host networking the pod sees the node's hostname, as in kubelet.
        body["Hostname"] = naming.pod_hostname(pod.name, spec.hostname)
        body["NetworkingConfig"] = {
            "EndpointsConfig": {p.network: {"IPAMConfig": {"IPv4Address": p.pod_ip}}}
        }
    if exposed:
        body["ExposedPorts"] = exposed
    return name, body


def _raw_container(pod: Pod, name: str) -> Mapping[str, Any]:
    spec = pod.manifest.get("spec") or {}
    for section in ("containers", "initContainers"):
        for raw in spec.get(section) or ():
            if raw.get("name") == name:
                result: Mapping[str, Any] = raw
                return result
    return {}


def _resource_value(ref: str, p: ContainerParams) -> str:
    _, target, resource, divisor_text = ref.split(":", 3)
    container = p.pod.spec.container(target) if target else p.container
    if container is None:  # validation guarantees it exists
        return "0"
    divisor = parse_quantity(divisor_text)
    r = container.resources
    if resource.endswith(".cpu"):
        milli = r.cpu_limit_milli if resource.startswith("limits") else r.cpu_request_milli
        if milli is None:
            milli = p.node.cpu_milli if resource.startswith("limits") else 0
        return str(math.ceil(milli / (divisor * 1000)))
    if resource.endswith(".memory"):
        amount = r.memory_limit if resource.startswith("limits") else r.memory_request
        if amount is None:
            amount = p.node.memory if resource.startswith("limits") else 0
        return str(math.ceil(amount / divisor))
    return "0"  # ephemeral-storage: no limit is tracked on this node


def _field_value(path: str, p: ContainerParams) -> str:
    pod = p.pod
    if path.startswith("resource:"):
        return _resource_value(path, p)
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "metadata.uid": pod.uid,
        "spec.nodeName": p.node_name,
        "spec.serviceAccountName": str(
            (pod.manifest.get("spec") or {}).get("serviceAccountName") or ""
        ),
        "status.hostIP": p.host_ip,
        "status.hostIPs": p.host_ip,
        "status.podIP": p.pod_ip,
        "status.podIPs": p.pod_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, source in (
        ("metadata.labels['", pod.labels),
        ("metadata.annotations['", pod.annotations),
    ):
        if path.startswith(prefix) and path.endswith("']"):
            return source.get(path[len(prefix) : -2], "")
    return ""


def resolve_env(p: ContainerParams) -> list[tuple[str, str]]:
    """The container's environment in order, with ``$(VAR)`` expanded against earlier entries."""
    env: dict[str, str] = {}
    for var in p.container.env:
        if var.field_path is not None:
            value = _field_value(var.field_path, p)
        else:
            value = expand(var.value or "", env.get)
        env[var.name] = value
    return list(env.items())


def _user(p: ContainerParams) -> str:
    sc = p.container.security_context
    psc = p.pod.spec.security_context
    uid = sc.run_as_user if sc.run_as_user is not None else psc.run_as_user
    gid = sc.run_as_group if sc.run_as_group is not None else psc.run_as_group
    non_root = sc.run_as_non_root if sc.run_as_non_root is not None else psc.run_as_non_root
    pod_ref = f"pod: {p.pod.name}_{p.pod.namespace}({p.pod.uid}), container: {p.container.name}"
    if non_root:
        if uid is not None:
            if uid == 0:
                raise CreateContainerConfigError(
                    f"container's runAsUser breaks non-root policy ({pod_ref})"
                )
        else:
            image_user = p.image_user.split(":", 1)[0]
            if image_user in ("", "root", "0"):
                raise CreateContainerConfigError(
                    f"container has runAsNonRoot and image will run as root ({pod_ref})"
                )
            if not image_user.isdigit():
                raise CreateContainerConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                    f"cannot verify user is non-root ({pod_ref})"
                )
    if uid is None and gid is None:
        return ""
    user = str(uid) if uid is not None else (p.image_user.split(":", 1)[0] or "0")
    return f"{user}:{gid}" if gid is not None else user


def container_labels(p: ContainerParams) -> dict[str, str]:
    pod = p.pod
    c = p.container
    raw = _raw_container(pod, c.name)
    labels = {
        naming.POD_NAME: pod.name,
        naming.POD_NAMESPACE: pod.namespace,
        naming.POD_UID: pod.uid,
        naming.CONTAINER_NAME: c.name,
        naming.DOCKER_TYPE: naming.TYPE_CONTAINER,
        naming.SANDBOX_ID: p.sandbox_id,
        naming.CONTAINER_HASH: c.spec_hash,
        naming.RESTART_COUNT: str(p.restart_count),
        naming.TERMINATION_MESSAGE_PATH: c.termination_message_path,
        naming.TERMINATION_MESSAGE_POLICY: c.termination_message_policy,
        naming.POD_GRACE_PERIOD: str(pod.spec.termination_grace_period_seconds),
        naming.NODE: p.node_name,
        naming.CONTAINER_KIND: container_kind(pod, c),
    }
    if p.backoff_delay is not None:
        labels[naming.BACKOFF_DELAY] = f"{p.backoff_delay:g}"
    pre_stop = (raw.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        # Kept on the container so it can be stopped properly without its spec.
        labels[naming.PRE_STOP_HANDLER] = json.dumps(pre_stop, sort_keys=True)
    if raw.get("ports"):
        labels[naming.CONTAINER_PORTS] = json.dumps(raw["ports"], sort_keys=True)
    if p.termination_log:
        labels[naming.TERMINATION_LOG] = p.termination_log
    return labels


def _security(p: ContainerParams, host_config: dict[str, Any]) -> None:
    sc = p.container.security_context
    psc = p.pod.spec.security_context
    if sc.privileged:
        host_config["Privileged"] = True
    if sc.read_only_root_filesystem:
        host_config["ReadonlyRootfs"] = True
    if sc.capabilities_add:
        host_config["CapAdd"] = list(sc.capabilities_add)
    if sc.capabilities_drop:
        host_config["CapDrop"] = list(sc.capabilities_drop)
    security_opt = []
    if sc.allow_privilege_escalation is False:
        security_opt.append("no-new-privileges")
    seccomp = sc.seccomp_profile or psc.seccomp_profile
    if seccomp == "Unconfined":
        security_opt.append("seccomp=unconfined")
    if security_opt:
        host_config["SecurityOpt"] = security_opt
    groups = [str(g) for g in psc.supplemental_groups]
    if psc.fs_group is not None and str(psc.fs_group) not in groups:
        groups.append(str(psc.fs_group))
    if groups:
        host_config["GroupAdd"] = groups


def _resources(c: Container, host_config: dict[str, Any]) -> None:
    r = c.resources
    request = r.cpu_request_milli if r.cpu_request_milli is not None else r.cpu_limit_milli
    shares = MIN_CPU_SHARES if not request else max(MIN_CPU_SHARES, request * 1024 // 1000)
    host_config["CpuShares"] = shares
    if r.cpu_limit_milli is not None:
        host_config["CpuPeriod"] = CPU_PERIOD_US
        host_config["CpuQuota"] = max(MIN_QUOTA_US, r.cpu_limit_milli * CPU_PERIOD_US // 1000)
    if r.memory_limit is not None:
        host_config["Memory"] = r.memory_limit
        # Kubernetes runs without swap: the limit covers memory plus swap.
        host_config["MemorySwap"] = r.memory_limit


def container_create_body(p: ContainerParams) -> tuple[str, dict[str, Any]]:
    pod = p.pod
    spec = pod.spec
    c = p.container
    name = naming.container_name(c.name, pod.name, pod.namespace, pod.uid, p.restart_count)
    env = resolve_env(p)
    env_map = dict(env)
    host_config: dict[str, Any] = {
        "NetworkMode": f"container:{p.sandbox_id}",
        "IpcMode": "host" if spec.host_ipc else f"container:{p.sandbox_id}",
        "RestartPolicy": {"Name": "no"},
        "Mounts": [m.to_api() for m in p.mounts],
    }
    if p.oom_score_adj is not None:
        host_config["OomScoreAdj"] = p.oom_score_adj
    if spec.host_pid:
        host_config["PidMode"] = "host"
    elif spec.share_process_namespace:
        host_config["PidMode"] = f"container:{p.sandbox_id}"
    _resources(c, host_config)
    _security(p, host_config)
    body: dict[str, Any] = {
        "Image": c.image,
        "Env": [f"{k}={v}" for k, v in env],
        "Labels": container_labels(p),
        "Healthcheck": NO_HEALTHCHECK,
        "HostConfig": host_config,
    }
    # command replaces the image's ENTRYPOINT (and drops its CMD); args replace CMD.
    if c.command:
        body["Entrypoint"] = [expand(x, env_map.get) for x in c.command]
    if c.args:
        body["Cmd"] = [expand(x, env_map.get) for x in c.args]
    if c.working_dir:
        body["WorkingDir"] = c.working_dir
    user = _user(p)
    if user:
        body["User"] = user
    if c.tty:
        body["Tty"] = True
    if c.stdin:
        body["OpenStdin"] = True
        body["StdinOnce"] = c.stdin_once
    return name, body


def hosts_file(
    *, pod_ip: str, hostname: str, aliases: Sequence[tuple[str, Sequence[str]]], fqdn: str = ""
) -> str:
    """The kubelet's managed /etc/hosts for a pod on the pod network."""
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if pod_ip:
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}" if fqdn else f"{pod_ip}\t{hostname}")
    lines.extend(_alias_lines(aliases))
    return "\n".join(lines) + "\n"


def host_network_hosts_file(node_hosts: str, aliases: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The kubelet's hosts file for a hostNetwork pod: the node's own, plus the aliases."""
    lines = ["# Kubernetes-managed hosts file (host network).", node_hosts.rstrip("\n")]
    lines.extend(_alias_lines(aliases))
    return "\n".join(lines) + "\n"


def _alias_lines(aliases: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    if not aliases:
        return []
    lines = ["", "# Entries added by HostAliases."]
    lines.extend(f"{ip}\t{chr(9).join(names)}" for ip, names in aliases)
    return lines
