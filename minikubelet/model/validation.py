"""Semantic validation of a Pod: the rules the OpenAPI schema cannot express.

Runs after the schema check and whatever it found: every rule reads the
document through the typed getters of ``access``, so a value of the wrong
type looks unset to it and no rule can raise. The schema reports the type;
``manifest`` drops rule errors under a field the schema already faulted.
Every pattern that checks input is matched whole (``fullmatch``), so a
trailing newline is never taken for the end of a name.

Follows Kubernetes' ``ValidatePodCreate`` for the parts a node agent acts on,
and rejects, with the field named, anything a static pod may not use or that
minikubelet does not implement: silently ignoring such a field would run a
pod unlike its spec. Fields that only a scheduler reads (affinity,
tolerations, priority, ...) are accepted and have no effect on one node.

Every error is collected; nothing stops at the first.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from minikubelet.errors import FieldError
from minikubelet.model.access import (
    get_bool,
    get_int,
    get_list,
    get_map,
    get_maps,
    get_opt_str,
    get_str,
    get_strs,
    has,
    is_true,
)
from minikubelet.model.quantity import QuantityError, parse_quantity
from minikubelet.model.schema import field_path

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_SYSCTL_NAME = re.compile(r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CAPABILITY = re.compile(r"[A-Za-z_]+")
_PORT_NUMBER = re.compile(r"[0-9]{1,5}")
# A pinned metadata.uid names the pod's directory under the state dir, which
# the agent deletes as root, and Docker containers: no '/', no '..', nothing
# but alphanumerics, '-' and single dots, starting with an alphanumeric.
_UID = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9.-]{0,127}")
_FIELD_REF = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")
# Messages quote values from the manifest cut to this many characters.
_MAX_QUOTE = 40

MAX_NAME = 253
MAX_LABEL = 63
MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_PORT = 65535
MAX_ID = 2147483647

SUPPORTED_FIELD_PATHS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
SUPPORTED_RESOURCE_FIELDS = frozenset(
    {
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
    }
)
_HOST_PATH_TYPES = frozenset(
    {
        "",
        "DirectoryOrCreate",
        "Directory",
        "FileOrCreate",
        "File",
        "Socket",
        "CharDevice",
        "BlockDevice",
    }
)
_VOLUME_SOURCES = frozenset(
    {
        "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
        "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
        "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
        "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO",
        "secret", "storageos", "vsphereVolume",
    }
)  # fmt: skip
_API_OBJECT_VOLUMES = frozenset(
    {"configMap", "secret", "persistentVolumeClaim", "projected", "ephemeral", "csi"}
)

# Pod fields a node agent would have to act on but minikubelet does not.
_UNSUPPORTED_POD_FIELDS = {
    "ephemeralContainers": "ephemeral containers are not supported",
    "activeDeadlineSeconds": "activeDeadlineSeconds is not supported",
    "runtimeClassName": "runtime classes are not supported",
    "resourceClaims": "resource claims reference API objects, which static pods may not",
    "resources": "pod-level resources are not supported",
    "imagePullSecrets": "image pull secrets reference API objects, which static pods may not",
    "hostUsers": "user namespaces (hostUsers) are not supported",
}
_UNSUPPORTED_CONTAINER_FIELDS = {
    "envFrom": "envFrom references API objects, which static pods may not",
    "volumeDevices": "raw block volumes are not supported",
    "resizePolicy": "in-place resize is not supported",
    "restartPolicyRules": "container restart rules are not supported",
}
_UNSUPPORTED_SECURITY_FIELDS = {
    "seLinuxOptions": "SELinux options are not supported",
    "windowsOptions": "Windows options are not supported on Linux",
    "procMount": "procMount is not supported",
    "appArmorProfile": "AppArmor profiles are not supported",
    "seLinuxChangePolicy": "SELinux options are not supported",
    "supplementalGroupsPolicy": "supplementalGroupsPolicy is not supported",
    "fsGroupChangePolicy": "fsGroupChangePolicy is not supported",
}

Path = tuple[str | int, ...]


class _Collector:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, path: Path, message: str) -> None:
        self.errors.append(FieldError(field_path(path), message))


def _quote(value: str) -> str:
    """A manifest value for a message: cut short, control characters escaped."""
    return repr(value if len(value) <= _MAX_QUOTE else value[: _MAX_QUOTE - 3] + "...")


def is_dns1123_label(value: str) -> bool:
    return len(value) <= MAX_LABEL and DNS1123_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= MAX_NAME and DNS1123_SUBDOMAIN.fullmatch(value) is not None


def is_port_name(value: str) -> bool:
    """IANA_SVC_NAME: what container port names and named probe ports must be."""
    return (
        len(value) <= 15
        and _IANA_SVC_NAME.fullmatch(value) is not None
        and "--" not in value
        and any(ch.isalpha() for ch in value)
    )


def is_valid_uid(value: str) -> bool:
    return _UID.fullmatch(value) is not None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _check_qualified_name(c: _Collector, path: Path, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or not is_dns1123_subdomain(prefix)):
        c.add(path, "prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > MAX_LABEL or _QUALIFIED_NAME.fullmatch(name) is None:
        c.add(
            path,
            "name part must be 63 characters or less, consist of alphanumerics, '-', '_' or '.', "
            "and start and end with an alphanumeric",
        )


def _check_relative_subpath(c: _Collector, path: Path, value: str) -> None:
    if value.startswith("/"):
        c.add(path, "must be a relative path")
    if ".." in value.split("/"):
        c.add(path, "must not contain '..'")
    _check_no_nul(c, path, value)


def _check_absolute_path(c: _Collector, path: Path, value: str) -> None:
    if not value.startswith("/"):
        c.add(path, "must be an absolute path")
    elif ".." in value.split("/"):
        c.add(path, "must not contain '..'")
    _check_no_nul(c, path, value)


def _check_no_nul(c: _Collector, path: Path, value: str) -> None:
    # The API accepts NUL in strings; Linux paths, argv and environments cannot
    # hold it, so the container would fail only when it is created.
    if "\x00" in value:
        c.add(path, "must not contain NUL characters")


def _check_non_negative(c: _Collector, path: Path, value: int | None, *, minimum: int = 0) -> None:
    if value is not None and value < minimum:
        c.add(path, f"must be greater than or equal to {minimum}")


def validate_metadata(c: _Collector, meta: Mapping[str, Any], *, name_suffix: str) -> None:
    path: Path = ("metadata",)
    name = get_str(meta, "name")
    if not name:
        c.add((*path, "name"), "required value")
    elif not is_dns1123_subdomain(name):
        c.add(
            (*path, "name"),
            "must be a lowercase RFC 1123 subdomain: lowercase alphanumerics, '-' or '.', "
            "starting and ending with an alphanumeric",
        )
    elif len(name) + len(name_suffix) > MAX_NAME:
        c.add(
            (*path, "name"),
            f"with the node suffix {_quote(name_suffix)} must be no more than {MAX_NAME} "
            "characters",
        )
    # An empty namespace or uid is unset: the file source fills both in.
    namespace = get_str(meta, "namespace")
    if namespace and not is_dns1123_label(namespace):
        c.add((*path, "namespace"), "must be a lowercase RFC 1123 label")
    uid = get_str(meta, "uid")
    if uid and not is_valid_uid(uid):
        c.add(
            (*path, "uid"),
            "must be alphanumerics, '-' or '.' (at most 128 characters), starting with an "
            "alphanumeric, without '..'",
        )
    for key, value in get_map(meta, "labels").items():
        _check_qualified_name(c, (*path, "labels", key), key)
        if isinstance(value, str) and (
            len(value) > MAX_LABEL or _LABEL_VALUE.fullmatch(value) is None
        ):
            c.add(
                (*path, "labels", key),
                "value must be 63 characters or less, alphanumerics, '-', '_' or '.'",
            )
    total = 0
    for key, value in get_map(meta, "annotations").items():
        _check_qualified_name(c, (*path, "annotations", key), key)
        total += len(key) + (len(value) if isinstance(value, str) else 0)
    if total > MAX_ANNOTATIONS_BYTES:
        c.add((*path, "annotations"), f"must have at most {MAX_ANNOTATIONS_BYTES} bytes")


def _check_port(c: _Collector, path: Path, port: object, names: set[str] | None = None) -> None:
    if isinstance(port, bool):
        return  # the schema's error
    if isinstance(port, int):
        if not 1 <= port <= MAX_PORT:
            c.add(path, "must be between 1 and 65535, inclusive")
    elif isinstance(port, str):
        if _PORT_NUMBER.fullmatch(port) is not None:
            if not 1 <= int(port) <= MAX_PORT:
                c.add(path, "must be between 1 and 65535, inclusive")
        elif not is_port_name(port):
            c.add(
                path,
                "must be a port number or an IANA_SVC_NAME "
                "(at most 15 lowercase alphanumerics or '-')",
            )
        elif names is not None and port not in names:
            c.add(path, f"names no port of this container ({_quote(port)})")
    elif port is None:
        c.add(path, "required value")


_HANDLER_KINDS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def _validate_handler(
    c: _Collector,
    path: Path,
    handler: Mapping[str, Any],
    *,
    allowed: tuple[str, ...],
    port_names: set[str],
) -> None:
    present = [k for k in _HANDLER_KINDS if has(handler, k)]
    if not present:
        c.add(path, f"must specify a handler type: one of {', '.join(allowed)}")
        return
    if len(present) > 1:
        c.add((*path, present[1]), "may not specify more than 1 handler type")
        return
    kind = present[0]
    if kind not in allowed:
        c.add((*path, kind), f"handler type not allowed here: must be one of {', '.join(allowed)}")
        return
    body = get_map(handler, kind)
    hpath = (*path, kind)
    if kind == "exec":
        if not get_list(body, "command"):
            c.add((*hpath, "command"), "required value")
        for i, arg in get_strs(body, "command"):
            _check_no_nul(c, (*hpath, "command", i), arg)
    elif kind == "httpGet":
        _check_port(c, (*hpath, "port"), body.get("port"), port_names)
        scheme = get_str(body, "scheme")  # "" is defaulted to HTTP
        if scheme and scheme not in ("HTTP", "HTTPS"):
            c.add((*hpath, "scheme"), 'unsupported value: must be "HTTP" or "HTTPS"')
        for i, header in get_maps(body, "httpHeaders"):
            if _HTTP_TOKEN.fullmatch(get_str(header, "name")) is None:
                c.add((*hpath, "httpHeaders", i, "name"), "must be a valid HTTP header name")
    elif kind == "tcpSocket":
        _check_port(c, (*hpath, "port"), body.get("port"), port_names)
    elif kind == "grpc":
        port = get_int(body, "port")
        if port is None or not 1 <= port <= MAX_PORT:
            c.add((*hpath, "port"), "must be between 1 and 65535, inclusive")
    elif kind == "sleep":
        _check_non_negative(c, (*hpath, "seconds"), get_int(body, "seconds"))


def _validate_probe(
    c: _Collector, path: Path, probe: Mapping[str, Any], *, kind: str, port_names: set[str]
) -> None:
    _validate_handler(
        c, path, probe, allowed=("exec", "httpGet", "tcpSocket", "grpc"), port_names=port_names
    )
    for name in (
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        _check_non_negative(c, (*path, name), get_int(probe, name))
    success = get_int(probe, "successThreshold")
    if kind in ("livenessProbe", "startupProbe") and success not in (None, 0, 1):
        c.add((*path, "successThreshold"), "must be 1")
    if has(probe, "terminationGracePeriodSeconds"):
        if kind == "readinessProbe":
            c.add((*path, "terminationGracePeriodSeconds"), "must not be set for readinessProbes")
        else:
            _check_non_negative(
                c,
                (*path, "terminationGracePeriodSeconds"),
                get_int(probe, "terminationGracePeriodSeconds"),
                minimum=1,
            )


def _validate_quantity(c: _Collector, path: Path, value: object) -> Decimal | None:
    try:
        q = parse_quantity(value)
    except QuantityError as e:
        c.add(path, str(e))
        return None
    if q < 0:
        c.add(path, "must be greater than or equal to 0")
        return None
    return q


def _validate_resources(c: _Collector, path: Path, resources: Mapping[str, Any]) -> None:
    if get_list(resources, "claims"):
        c.add((*path, "claims"), "resource claims reference API objects, which static pods may not")
    parsed: dict[str, dict[str, Decimal]] = {}
    for section in ("limits", "requests"):
        for name, value in get_map(resources, section).items():
            p = (*path, section, name)
            if name not in ("cpu", "memory", "ephemeral-storage"):
                c.add(p, "unsupported resource: must be cpu, memory or ephemeral-storage")
                continue
            q = _validate_quantity(c, p, value)
            if q is not None:
                parsed.setdefault(section, {})[name] = q
    for name, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and request > limit:
            c.add((*path, "requests", name), f"must be less than or equal to {name} limit")


def _validate_security_context(c: _Collector, path: Path, sc: Mapping[str, Any]) -> None:
    for name, message in _UNSUPPORTED_SECURITY_FIELDS.items():
        if has(sc, name):
            c.add((*path, name), message)
    for name in ("runAsUser", "runAsGroup", "fsGroup"):
        value = get_int(sc, name)
        if value is not None and not 0 <= value <= MAX_ID:
            c.add((*path, name), f"must be between 0 and {MAX_ID}, inclusive")
    for i, gid in enumerate(get_list(sc, "supplementalGroups")):
        if isinstance(gid, int) and not isinstance(gid, bool) and not 0 <= gid <= MAX_ID:
            c.add((*path, "supplementalGroups", i), f"must be between 0 and {MAX_ID}, inclusive")
    if is_true(sc, "privileged") and get_bool(sc, "allowPrivilegeEscalation") is False:
        c.add(
            (*path, "allowPrivilegeEscalation"),
            "cannot set allowPrivilegeEscalation to false and privileged to true",
        )
    if has(sc, "seccompProfile") and get_str(get_map(sc, "seccompProfile"), "type") not in (
        "RuntimeDefault",
        "Unconfined",
    ):
        c.add(
            (*path, "seccompProfile", "type"),
            'unsupported value: must be "RuntimeDefault" or "Unconfined"',
        )
    caps = get_map(sc, "capabilities")
    for section in ("add", "drop"):
        for i, cap in get_strs(caps, section):
            if _CAPABILITY.fullmatch(cap) is None:
                c.add(
                    (*path, "capabilities", section, i),
                    "must be a capability name such as NET_ADMIN",
                )


def _validate_env(
    c: _Collector, path: Path, env: list[tuple[int, Mapping[str, Any]]], container_names: set[str]
) -> None:
    for i, var in env:
        p = (*path, i)
        name = get_str(var, "name")
        if not name or "=" in name or any(not 0x20 <= ord(ch) <= 0x7E for ch in name):
            c.add((*p, "name"), "must be printable ASCII characters other than '='")
        _check_no_nul(c, (*p, "value"), get_str(var, "value"))
        if not has(var, "valueFrom"):
            continue
        source = get_map(var, "valueFrom")
        if get_str(var, "value"):
            c.add((*p, "valueFrom"), "may not be specified when `value` is not empty")
        kinds = [k for k in source if has(source, k)]
        if len(kinds) != 1:
            c.add((*p, "valueFrom"), "must specify exactly one of fieldRef or resourceFieldRef")
            continue
        kind = kinds[0]
        if kind == "fieldRef":
            ref = get_map(source, "fieldRef")
            api_version = get_str(ref, "apiVersion")  # "" is defaulted to v1
            if api_version and api_version != "v1":
                c.add(
                    (*p, "valueFrom", "fieldRef", "apiVersion"), 'unsupported value: must be "v1"'
                )
            fp = get_str(ref, "fieldPath")
            if fp not in SUPPORTED_FIELD_PATHS and _FIELD_REF.fullmatch(fp) is None:
                c.add(
                    (*p, "valueFrom", "fieldRef", "fieldPath"),
                    f"unsupported value {_quote(fp)}: must be one of "
                    f"{', '.join(sorted(SUPPORTED_FIELD_PATHS))}, "
                    "metadata.labels['<key>'] or metadata.annotations['<key>']",
                )
        elif kind == "resourceFieldRef":
            ref = get_map(source, "resourceFieldRef")
            if get_str(ref, "resource") not in SUPPORTED_RESOURCE_FIELDS:
                c.add(
                    (*p, "valueFrom", "resourceFieldRef", "resource"),
                    "unsupported value: must be one of "
                    + ", ".join(sorted(SUPPORTED_RESOURCE_FIELDS)),
                )
            target = get_str(ref, "containerName")
            if target and target not in container_names:
                c.add(
                    (*p, "valueFrom", "resourceFieldRef", "containerName"),
                    "names no container of this pod",
                )
            if has(ref, "divisor"):
                q = _validate_quantity(
                    c, (*p, "valueFrom", "resourceFieldRef", "divisor"), ref["divisor"]
                )
                if q is not None and q == 0:
                    c.add(
                        (*p, "valueFrom", "resourceFieldRef", "divisor"), "must be greater than 0"
                    )
        else:
            c.add((*p, "valueFrom", kind), "references API objects, which static pods may not")


def _validate_ports(
    c: _Collector, path: Path, ctr: Mapping[str, Any], *, host_network: bool
) -> set[str]:
    port_names: set[str] = set()
    for i, port in get_maps(ctr, "ports"):
        p = (*path, "ports", i)
        cp = get_int(port, "containerPort")
        if cp is None or not 1 <= cp <= MAX_PORT:
            c.add((*p, "containerPort"), "must be between 1 and 65535, inclusive")
        hp = get_int(port, "hostPort")
        if hp is not None and not 0 <= hp <= MAX_PORT:
            c.add((*p, "hostPort"), "must be between 0 and 65535, inclusive")
        if host_network and hp and hp != cp:
            c.add((*p, "hostPort"), "must match containerPort when hostNetwork is true")
        proto = get_str(port, "protocol")  # "" is defaulted to TCP
        if proto and proto not in ("TCP", "UDP", "SCTP"):
            c.add((*p, "protocol"), 'unsupported value: must be "TCP", "UDP" or "SCTP"')
        pname = get_str(port, "name")
        if pname:
            if not is_port_name(pname):
                c.add(
                    (*p, "name"),
                    "must be an IANA_SVC_NAME (at most 15 lowercase alphanumerics or '-')",
                )
            elif pname in port_names:
                c.add((*p, "name"), f"duplicate value {_quote(pname)}")
            port_names.add(pname)
        host_ip = get_str(port, "hostIP")
        if host_ip and not _is_ip(host_ip):
            c.add((*p, "hostIP"), "must be a valid IP address")
    return port_names


def _validate_mounts(
    c: _Collector, path: Path, ctr: Mapping[str, Any], *, volumes: set[str]
) -> None:
    mount_paths: set[str] = set()
    privileged = is_true(get_map(ctr, "securityContext"), "privileged")
    for i, mount in get_maps(ctr, "volumeMounts"):
        p = (*path, "volumeMounts", i)
        name = get_str(mount, "name")
        if name not in volumes:
            c.add((*p, "name"), f"not found: no volume named {_quote(name)}")
        mp = get_str(mount, "mountPath")
        if not mp:
            c.add((*p, "mountPath"), "required value")
        else:
            _check_absolute_path(c, (*p, "mountPath"), mp)
            normalized = posixpath.normpath(mp)
            if normalized in mount_paths:
                c.add((*p, "mountPath"), "must be unique")
            mount_paths.add(normalized)
        sub_path = get_str(mount, "subPath")
        if sub_path:
            _check_relative_subpath(c, (*p, "subPath"), sub_path)
        if get_str(mount, "subPathExpr"):
            c.add((*p, "subPathExpr"), "subPathExpr is not supported")
        propagation = get_opt_str(mount, "mountPropagation")
        if propagation is not None and propagation not in (
            "None",
            "HostToContainer",
            "Bidirectional",
        ):
            c.add(
                (*p, "mountPropagation"),
                'unsupported value: must be "None", "HostToContainer" or "Bidirectional"',
            )
        if propagation == "Bidirectional" and not privileged:
            c.add(
                (*p, "mountPropagation"),
                "Bidirectional mount propagation is available only to privileged containers",
            )
        if get_opt_str(mount, "recursiveReadOnly") not in (None, "Disabled"):
            c.add((*p, "recursiveReadOnly"), "recursive read-only mounts are not supported")


def _validate_container(
    c: _Collector,
    path: Path,
    ctr: Mapping[str, Any],
    *,
    init: bool,
    volumes: set[str],
    container_names: set[str],
    host_network: bool,
) -> None:
    if not is_dns1123_label(get_str(ctr, "name")):
        c.add(
            (*path, "name"), "must be a lowercase RFC 1123 label (at most 63 alphanumerics or '-')"
        )
    image = get_str(ctr, "image")
    if not image:
        c.add((*path, "image"), "required value")
    elif image != image.strip():
        c.add((*path, "image"), "must not have leading or trailing whitespace")
    else:
        _check_no_nul(c, (*path, "image"), image)
    for fname, message in _UNSUPPORTED_CONTAINER_FIELDS.items():
        if ctr.get(fname):
            c.add((*path, fname), message)
    for fname in ("command", "args"):
        for i, arg in get_strs(ctr, fname):
            _check_no_nul(c, (*path, fname, i), arg)
    policy = get_str(ctr, "imagePullPolicy")  # "" is defaulted from the image's tag
    if policy and policy not in ("Always", "IfNotPresent", "Never"):
        c.add(
            (*path, "imagePullPolicy"),
            'unsupported value: must be "Always", "IfNotPresent" or "Never"',
        )

    restart = get_opt_str(ctr, "restartPolicy")
    sidecar = init and restart == "Always"
    if has(ctr, "restartPolicy") and not sidecar:
        c.add((*path, "restartPolicy"), 'only init containers may set it, and only to "Always"')

    port_names = _validate_ports(c, path, ctr, host_network=host_network)
    _validate_env(c, (*path, "env"), get_maps(ctr, "env"), container_names)
    _validate_resources(c, (*path, "resources"), get_map(ctr, "resources"))
    _validate_mounts(c, path, ctr, volumes=volumes)

    probes_allowed = not init or sidecar
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if not has(ctr, kind):
            continue
        if not probes_allowed:
            c.add((*path, kind), "may not be set for init containers without restartPolicy=Always")
            continue
        _validate_probe(c, (*path, kind), get_map(ctr, kind), kind=kind, port_names=port_names)

    lifecycle = get_map(ctr, "lifecycle")
    if lifecycle:
        if init and not sidecar:
            c.add(
                (*path, "lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            )
        else:
            for hook in ("postStart", "preStop"):
                if has(lifecycle, hook):
                    _validate_handler(
                        c,
                        (*path, "lifecycle", hook),
                        get_map(lifecycle, hook),
                        allowed=("exec", "httpGet", "tcpSocket", "sleep"),
                        port_names=port_names,
                    )
            if has(lifecycle, "stopSignal"):
                c.add((*path, "lifecycle", "stopSignal"), "stopSignal is not supported")

    # An empty terminationMessagePath or policy is defaulted, as on the API server.
    tmp = get_str(ctr, "terminationMessagePath")
    if tmp:
        _check_absolute_path(c, (*path, "terminationMessagePath"), tmp)
    tmpol = get_str(ctr, "terminationMessagePolicy")
    if tmpol and tmpol not in ("File", "FallbackToLogsOnError"):
        c.add(
            (*path, "terminationMessagePolicy"),
            'unsupported value: must be "File" or "FallbackToLogsOnError"',
        )
    wd = get_str(ctr, "workingDir")
    if wd:
        _check_absolute_path(c, (*path, "workingDir"), wd)
    sc = get_map(ctr, "securityContext")
    if sc:
        _validate_security_context(c, (*path, "securityContext"), sc)


def _validate_volumes(c: _Collector, volumes: list[tuple[int, Mapping[str, Any]]]) -> set[str]:
    names: set[str] = set()
    for i, vol in volumes:
        path: Path = ("spec", "volumes", i)
        name = get_str(vol, "name")
        if not is_dns1123_label(name):
            c.add(
                (*path, "name"),
                "must be a lowercase RFC 1123 label (at most 63 alphanumerics or '-')",
            )
        elif name in names:
            c.add((*path, "name"), f"duplicate value {_quote(name)}")
        names.add(name)
        sources = sorted(k for k in _VOLUME_SOURCES if has(vol, k))
        if len(sources) > 1:
            c.add((*path, sources[1]), "may not specify more than 1 volume type")
            continue
        if not sources:
            continue  # defaults to emptyDir, as the API server does
        source = sources[0]
        body = get_map(vol, source)
        if source == "emptyDir":
            if get_str(body, "medium") not in ("", "Memory"):
                c.add((*path, "emptyDir", "medium"), 'unsupported value: must be "" or "Memory"')
            if has(body, "sizeLimit"):
                _validate_quantity(c, (*path, "emptyDir", "sizeLimit"), body["sizeLimit"])
        elif source == "hostPath":
            hp = get_str(body, "path")
            if not hp:
                c.add((*path, "hostPath", "path"), "required value")
            else:
                _check_absolute_path(c, (*path, "hostPath", "path"), hp)
            if get_str(body, "type") not in _HOST_PATH_TYPES:
                c.add(
                    (*path, "hostPath", "type"),
                    "unsupported value: must be one of "
                    + ", ".join(repr(t) for t in sorted(_HOST_PATH_TYPES)),
                )
        elif source in _API_OBJECT_VOLUMES:
            c.add((*path, source), "references API objects, which static pods may not")
        else:
            c.add(
                (*path, source), f"volume type {source} is not supported: use emptyDir or hostPath"
            )
    return names


def _validate_containers(c: _Collector, spec: Mapping[str, Any], volume_names: set[str]) -> None:
    containers = get_list(spec, "containers")
    init_containers = get_list(spec, "initContainers")
    if not containers:
        c.add(("spec", "containers"), "required value: a pod needs at least one container")
    all_names = {get_str(x, "name") for x in (*containers, *init_containers)}
    seen: set[str] = set()
    host_network = is_true(spec, "hostNetwork")
    host_ports: set[tuple[str, int, str]] = set()
    for section, items in (("initContainers", init_containers), ("containers", containers)):
        for i, ctr in enumerate(items):
            if not isinstance(ctr, Mapping):
                continue  # a null or a wrong type: reported as such
            path: Path = ("spec", section, i)
            name = get_str(ctr, "name")
            if name and name in seen:
                c.add((*path, "name"), f"duplicate value {_quote(name)}")
            seen.add(name)
            _validate_container(
                c,
                path,
                ctr,
                init=section == "initContainers",
                volumes=volume_names,
                container_names=all_names,
                host_network=host_network,
            )
            for j, port in get_maps(ctr, "ports"):
                hp = get_int(port, "hostPort") or (
                    get_int(port, "containerPort") if host_network else 0
                )
                if hp:
                    key = (get_str(port, "hostIP"), hp, get_str(port, "protocol") or "TCP")
                    if key in host_ports:
                        c.add((*path, "ports", j, "hostPort"), f"duplicate value {hp}/{key[2]}")
                    host_ports.add(key)


_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")


def _validate_dns(c: _Collector, spec: Mapping[str, Any]) -> None:
    dns_policy = get_str(spec, "dnsPolicy")  # "" is defaulted to ClusterFirst
    if dns_policy and dns_policy not in (
        "ClusterFirst",
        "ClusterFirstWithHostNet",
        "Default",
        "None",
    ):
        c.add(("spec", "dnsPolicy"), "unsupported value")
    dns_config = get_map(spec, "dnsConfig")
    servers = get_list(dns_config, "nameservers")
    for i, server in enumerate(servers):
        if isinstance(server, str) and not _is_ip(server):
            c.add(("spec", "dnsConfig", "nameservers", i), "must be a valid IP address")
    if len(servers) > 3:
        c.add(("spec", "dnsConfig", "nameservers"), "must not have more than 3 nameservers")
    if len(get_list(dns_config, "searches")) > 32:
        c.add(("spec", "dnsConfig", "searches"), "must not have more than 32 search paths")
    if dns_policy == "None" and not servers:
        c.add(
            ("spec", "dnsConfig", "nameservers"),
            "must provide at least one DNS nameserver when dnsPolicy is None",
        )


def validate_pod(document: Mapping[str, Any], *, name_suffix: str = "") -> list[FieldError]:
    """Every semantic error in a Pod document, whatever its types."""
    c = _Collector()
    if document.get("apiVersion") != "v1" or document.get("kind") != "Pod":
        c.add(("kind",), "must be a v1 Pod")
        return c.errors
    validate_metadata(c, get_map(document, "metadata"), name_suffix=name_suffix)
    if not isinstance(document.get("spec"), Mapping):
        c.add(("spec",), "required value")
        return c.errors
    spec = get_map(document, "spec")

    for fname, message in _UNSUPPORTED_POD_FIELDS.items():
        if has(spec, fname):
            c.add(("spec", fname), message)
    os_name = get_opt_str(get_map(spec, "os"), "name")
    if os_name is not None and os_name != "linux":
        c.add(("spec", "os", "name"), 'unsupported value: must be "linux"')

    volume_names = _validate_volumes(c, get_maps(spec, "volumes"))
    _validate_containers(c, spec, volume_names)

    policy = get_str(spec, "restartPolicy")  # "" is defaulted to Always
    if policy and policy not in ("Always", "OnFailure", "Never"):
        c.add(
            ("spec", "restartPolicy"), 'unsupported value: must be "Always", "OnFailure" or "Never"'
        )
    _check_non_negative(
        c, ("spec", "terminationGracePeriodSeconds"), get_int(spec, "terminationGracePeriodSeconds")
    )
    for fname in ("hostname", "subdomain"):
        value = get_str(spec, fname)
        if value and not is_dns1123_label(value):
            c.add(("spec", fname), "must be a lowercase RFC 1123 label")
    if is_true(spec, "shareProcessNamespace") and is_true(spec, "hostPID"):
        c.add(
            ("spec", "shareProcessNamespace"),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        )

    for i, alias in get_maps(spec, "hostAliases"):
        if not _is_ip(get_str(alias, "ip")):
            c.add(("spec", "hostAliases", i, "ip"), "must be a valid IP address")
        for j, hostname in get_strs(alias, "hostnames"):
            if not is_dns1123_subdomain(hostname):
                c.add(
                    ("spec", "hostAliases", i, "hostnames", j),
                    "must be a lowercase RFC 1123 subdomain",
                )

    _validate_dns(c, spec)

    psc = get_map(spec, "securityContext")
    if psc:
        _validate_security_context(c, ("spec", "securityContext"), psc)
        sysctl_names: set[str] = set()
        host_network = is_true(spec, "hostNetwork")
        for i, sysctl in get_maps(psc, "sysctls"):
            name = get_str(sysctl, "name")
            p = ("spec", "securityContext", "sysctls", i, "name")
            if len(name) > MAX_NAME or _SYSCTL_NAME.fullmatch(name) is None:
                c.add(p, "must be a sysctl name such as net.ipv4.ip_local_port_range")
            elif name in sysctl_names:
                c.add(p, f"duplicate value {_quote(name)}")
            elif host_network and name.startswith("net."):
                c.add(p, "net.* sysctls may not be set in a pod with hostNetwork")
            sysctl_names.add(name)
    for i, gate in get_maps(spec, "readinessGates"):
        _check_qualified_name(
            c, ("spec", "readinessGates", i, "conditionType"), get_str(gate, "conditionType")
        )
    return c.errors
