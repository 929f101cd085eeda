"""Typed, immutable view of a validated and defaulted Pod.

Everything above ``model/`` works with these types. They are built only by
``model.build`` from a manifest that passed schema and semantic validation,
so their constructors trust their inputs. Field names are Python spellings
of the API fields; the API object itself stays available as
``Pod.manifest`` for output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

PodUID = NewType("PodUID", str)


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class DNSPolicy(StrEnum):
    CLUSTER_FIRST = "ClusterFirst"
    CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirstWithHostNet"
    DEFAULT = "Default"
    NONE = "None"


class ProbeKind(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


# --- handlers (probes and lifecycle hooks) ---


@dataclass(frozen=True, slots=True)
class ExecAction:
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HTTPGetAction:
    port: int | str
    path: str = "/"
    host: str = ""
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TCPSocketAction:
    port: int | str
    host: str = ""


@dataclass(frozen=True, slots=True)
class GRPCAction:
    port: int
    service: str = ""


@dataclass(frozen=True, slots=True)
class SleepAction:
    seconds: int


Handler = ExecAction | HTTPGetAction | TCPSocketAction | GRPCAction | SleepAction


@dataclass(frozen=True, slots=True)
class Probe:
    handler: Handler
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    post_start: Handler | None = None
    pre_stop: Handler | None = None


# --- containers ---


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str = ""
    host_port: int = 0
    host_ip: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One ``env`` entry: a literal ``value`` or a ``valueFrom.fieldRef`` path."""

    name: str
    value: str | None = None
    field_path: str | None = None


@dataclass(frozen=True, slots=True)
class Resources:
    """Requests and limits in milli-CPU and bytes; ``None`` when not given."""

    cpu_limit_milli: int | None = None
    memory_limit: int | None = None
    cpu_request_milli: int | None = None
    memory_request: int | None = None


@dataclass(frozen=True, slots=True)
class SecurityContext:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    privileged: bool = False
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    seccomp_profile: str | None = None


@dataclass(frozen=True, slots=True)
class PodSecurityContext:
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    seccomp_profile: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str = ""
    mount_propagation: str = "None"


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    # Hash of the container's API object: a different hash means a different
    # container, which is how an adopted container is matched to its spec.
    spec_hash: str
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: Resources = field(default_factory=Resources)
    volume_mounts: tuple[VolumeMount, ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    termination_message_path: str = "/dev/termination-log"
    termination_message_policy: str = "File"
    security_context: SecurityContext = field(default_factory=SecurityContext)
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    # Only init containers may set it, and only to Always: that makes a sidecar.
    restart_policy: RestartPolicy | None = None

    @property
    def is_sidecar(self) -> bool:
        return self.restart_policy is RestartPolicy.ALWAYS

    @property
    def named_ports(self) -> dict[str, int]:
        """Container ports by name, for probes and hooks that name their port."""
        return {p.name: p.container_port for p in self.ports if p.name}


# --- volumes ---


@dataclass(frozen=True, slots=True)
class EmptyDirSource:
    medium: str = ""
    size_limit: int | None = None


@dataclass(frozen=True, slots=True)
class HostPathSource:
    path: str
    type: str = ""


VolumeSource = EmptyDirSource | HostPathSource


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    source: VolumeSource


# --- pod ---


@dataclass(frozen=True, slots=True)
class HostAlias:
    ip: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DNSConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...] = ()
    volumes: tuple[Volume, ...] = ()
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    termination_grace_period_seconds: int = 30
    dns_policy: DNSPolicy = DNSPolicy.CLUSTER_FIRST
    dns_config: DNSConfig | None = None
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    share_process_namespace: bool = False
    hostname: str = ""
    subdomain: str = ""
    host_aliases: tuple[HostAlias, ...] = ()
    security_context: PodSecurityContext = field(default_factory=PodSecurityContext)
    node_name: str = ""
    readiness_gates: tuple[str, ...] = ()

    def container(self, name: str) -> Container | None:
        for c in (*self.init_containers, *self.containers):
            if c.name == name:
                return c
        return None

    def volume(self, name: str) -> Volume | None:
        for v in self.volumes:
            if v.name == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Pod:
    """A desired pod as a source produced it.

    ``name`` is the full name (for static pods ``<metadata.name>-<node>``).
    ``origin`` says where it came from (a file path), for error messages and
    duplicate reports; ``manifest`` is the defaulted API object (metadata and
    spec) that ``/pods`` shows.
    """

    uid: PodUID
    name: str
    namespace: str
    spec: PodSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: str = "file"
    origin: str = ""
    manifest: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        """``namespace/name``, the form logs and errors use."""
        return f"{self.namespace}/{self.name}"
