"""Semantic validation of a Pod: the rules the OpenAPI schema cannot express.

Runs after the schema check, so types and field names are already right.
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
from typing import Any

from minikubelet.errors import FieldError
from minikubelet.model.quantity import QuantityError, parse_quantity
from minikubelet.model.schema import field_path

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SYSCTL_NAME = re.compile(r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")
_HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A pinned metadata.uid ends up in Docker container names.
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")
_FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")

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


def is_dns1123_label(value: str) -> bool:
    return len(value) <= MAX_LABEL and DNS1123_LABEL.match(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= MAX_NAME and DNS1123_SUBDOMAIN.match(value) is not None


def is_port_name(value: str) -> bool:
    """IANA_SVC_NAME: what container port names and named probe ports must be."""
    return (
        len(value) <= 15
        and _IANA_SVC_NAME.match(value) is not None
        and "--" not in value
        and any(ch.isalpha() for ch in value)
    )


def _check_qualified_name(c: _Collector, path: Path, key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or not is_dns1123_subdomain(prefix)):
        c.add(path, "prefix part must be a lowercase RFC 1123 subdomain")
    if not name or len(name) > MAX_LABEL or _QUALIFIED_NAME.match(name) is None:
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


def _check_absolute_path(c: _Collector, path: Path, value: str) -> None:
    if not value.startswith("/"):
        c.add(path, "must be an absolute path")
    elif ".." in value.split("/"):
        c.add(path, "must not contain '..'")


def _check_non_negative(c: _Collector, path: Path, value: object, *, minimum: int = 0) -> None:
    if isinstance(value, int) and value < minimum:
        c.add(path, f"must be greater than or equal to {minimum}")


def validate_metadata(c: _Collector, meta: Mapping[str, Any], *, name_suffix: str) -> None:
    path: Path = ("metadata",)
    name = meta.get("name")
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
            f"with the node suffix {name_suffix!r} must be no more than {MAX_NAME} characters",
        )
    namespace = meta.get("namespace")
    if namespace is not None and not is_dns1123_label(namespace):
        c.add((*path, "namespace"), "must be a lowercase RFC 1123 label")
    uid = meta.get("uid")
    if uid is not None and _UID.match(uid) is None:
        c.add((*path, "uid"), "must be alphanumerics, '-' or '.' (at most 128 characters)")
    for key, value in (meta.get("labels") or {}).items():
        _check_qualified_name(c, (*path, "labels", key), key)
        if value is not None and (len(value) > MAX_LABEL or _LABEL_VALUE.match(value) is None):
            c.add(
                (*path, "labels", key),
                "value must be 63 characters or less, alphanumerics, '-', '_' or '.'",
            )
    annotations = meta.get("annotations") or {}
    total = 0
    for key, value in annotations.items():
        _check_qualified_name(c, (*path, "annotations", key), key)
        total += len(key) + len(value or "")
    if total > MAX_ANNOTATIONS_BYTES:
        c.add((*path, "annotations"), f"must have at most {MAX_ANNOTATIONS_BYTES} bytes")


def _check_port(c: _Collector, path: Path, port: object, names: set[str] | None = None) -> None:
    if isinstance(port, int):
        if not 1 <= port <= MAX_PORT:
            c.add(path, "must be between 1 and 65535, inclusive")
    elif isinstance(port, str):
        if port.isdigit():
            if not 1 <= int(port) <= MAX_PORT:
                c.add(path, "must be between 1 and 65535, inclusive")
        elif not is_port_name(port):
            c.add(
                path,
                "must be a port number or an IANA_SVC_NAME "
                "(at most 15 lowercase alphanumerics or '-')",
            )
        elif names is not None and port not in names:
            c.add(path, f"names no port of this container ({port!r})")
    else:
        c.add(path, "required value")


def _validate_handler(
    c: _Collector,
    path: Path,
    handler: Mapping[str, Any],
    *,
    allowed: tuple[str, ...],
    port_names: set[str],
) -> None:
    present = [
        k for k in ("exec", "httpGet", "tcpSocket", "grpc", "sleep") if handler.get(k) is not None
    ]
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
    body = handler[kind]
    hpath = (*path, kind)
    if kind == "exec":
        if not body.get("command"):
            c.add((*hpath, "command"), "required value")
    elif kind == "httpGet":
        _check_port(c, (*hpath, "port"), body.get("port"), port_names)
        scheme = body.get("scheme", "HTTP")
        if scheme not in ("HTTP", "HTTPS"):
            c.add((*hpath, "scheme"), 'unsupported value: must be "HTTP" or "HTTPS"')
        for i, header in enumerate(body.get("httpHeaders") or []):
            if _HTTP_TOKEN.match(header.get("name") or "") is None:
                c.add((*hpath, "httpHeaders", i, "name"), "must be a valid HTTP header name")
    elif kind == "tcpSocket":
        _check_port(c, (*hpath, "port"), body.get("port"), port_names)
    elif kind == "grpc":
        port = body.get("port")
        if not isinstance(port, int) or not 1 <= port <= MAX_PORT:
            c.add((*hpath, "port"), "must be between 1 and 65535, inclusive")
    elif kind == "sleep":
        _check_non_negative(c, (*hpath, "seconds"), body.get("seconds"))


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
        _check_non_negative(c, (*path, name), probe.get(name))
    success = probe.get("successThreshold")
    if kind in ("livenessProbe", "startupProbe") and success not in (None, 0, 1):
        c.add((*path, "successThreshold"), "must be 1")
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readinessProbe":
            c.add((*path, "terminationGracePeriodSeconds"), "must not be set for readinessProbes")
        else:
            _check_non_negative(c, (*path, "terminationGracePeriodSeconds"), grace, minimum=1)


def _validate_quantity(c: _Collector, path: Path, value: object) -> Any:
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
    if resources.get("claims"):
        c.add((*path, "claims"), "resource claims reference API objects, which static pods may not")
    parsed: dict[str, dict[str, Any]] = {}
    for section in ("limits", "requests"):
        for name, value in (resources.get(section) or {}).items():
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
        if sc.get(name) is not None:
            c.add((*path, name), message)
    for name in ("runAsUser", "runAsGroup", "fsGroup"):
        value = sc.get(name)
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            c.add((*path, name), f"must be between 0 and {MAX_ID}, inclusive")
    for i, gid in enumerate(sc.get("supplementalGroups") or []):
        if not 0 <= gid <= MAX_ID:
            c.add((*path, "supplementalGroups", i), f"must be between 0 and {MAX_ID}, inclusive")
    if sc.get("privileged") and sc.get("allowPrivilegeEscalation") is False:
        c.add(
            (*path, "allowPrivilegeEscalation"),
            "cannot set allowPrivilegeEscalation to false and privileged to true",
        )
    seccomp = sc.get("seccompProfile")
    if seccomp is not None and seccomp.get("type") not in ("RuntimeDefault", "Unconfined"):
        c.add(
            (*path, "seccompProfile", "type"),
            'unsupported value: must be "RuntimeDefault" or "Unconfined"',
        )
    caps = sc.get("capabilities") or {}
    for section in ("add", "drop"):
        for i, cap in enumerate(caps.get(section) or []):
            if not re.match(r"^[A-Za-z_]+$", cap):
                c.add(
                    (*path, "capabilities", section, i),
                    "must be a capability name such as NET_ADMIN",
                )


def _validate_env(
    c: _Collector, path: Path, env: list[Mapping[str, Any]], container_names: set[str]
) -> None:
    for i, var in enumerate(env):
        p = (*path, i)
        name = var.get("name") or ""
        if not name or "=" in name or any(not 0x20 <= ord(ch) <= 0x7E for ch in name):
            c.add((*p, "name"), "must be printable ASCII characters other than '='")
        source = var.get("valueFrom")
        if source is None:
            continue
        if var.get("value"):
            c.add((*p, "valueFrom"), "may not be specified when `value` is not empty")
        kinds = [k for k, v in source.items() if v is not None]
        if len(kinds) != 1:
            c.add((*p, "valueFrom"), "must specify exactly one of fieldRef or resourceFieldRef")
            continue
        kind = kinds[0]
        if kind == "fieldRef":
            ref = source["fieldRef"]
            if ref.get("apiVersion", "v1") != "v1":
                c.add(
                    (*p, "valueFrom", "fieldRef", "apiVersion"), 'unsupported value: must be "v1"'
                )
            fp = ref.get("fieldPath") or ""
            if fp not in SUPPORTED_FIELD_PATHS and _FIELD_REF.match(fp) is None:
                c.add(
                    (*p, "valueFrom", "fieldRef", "fieldPath"),
                    f"unsupported value {fp!r}: must be one of "
                    f"{', '.join(sorted(SUPPORTED_FIELD_PATHS))}, "
                    "metadata.labels['<key>'] or metadata.annotations['<key>']",
                )
        elif kind == "resourceFieldRef":
            ref = source["resourceFieldRef"]
            if ref.get("resource") not in SUPPORTED_RESOURCE_FIELDS:
                c.add(
                    (*p, "valueFrom", "resourceFieldRef", "resource"),
                    "unsupported value: must be one of "
                    + ", ".join(sorted(SUPPORTED_RESOURCE_FIELDS)),
                )
            target = ref.get("containerName")
            if target and target not in container_names:
                c.add(
                    (*p, "valueFrom", "resourceFieldRef", "containerName"),
                    "names no container of this pod",
                )
            if ref.get("divisor") is not None:
                q = _validate_quantity(
                    c, (*p, "valueFrom", "resourceFieldRef", "divisor"), ref["divisor"]
                )
                if q is not None and q == 0:
                    c.add(
                        (*p, "valueFrom", "resourceFieldRef", "divisor"), "must be greater than 0"
                    )
        else:
            c.add((*p, "valueFrom", kind), "references API objects, which static pods may not")


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
    name = ctr.get("name") or ""
    if not is_dns1123_label(name):
        c.add(
            (*path, "name"), "must be a lowercase RFC 1123 label (at most 63 alphanumerics or '-')"
        )
    image = ctr.get("image")
    if not image:
        c.add((*path, "image"), "required value")
    elif image != image.strip():
        c.add((*path, "image"), "must not have leading or trailing whitespace")
    for fname, message in _UNSUPPORTED_CONTAINER_FIELDS.items():
        if ctr.get(fname):
            c.add((*path, fname), message)
    policy = ctr.get("imagePullPolicy")
    if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
        c.add(
            (*path, "imagePullPolicy"),
            'unsupported value: must be "Always", "IfNotPresent" or "Never"',
        )

    restart = ctr.get("restartPolicy")
    sidecar = init and restart == "Always"
    if restart is not None and (not init or restart != "Always"):
        c.add((*path, "restartPolicy"), 'only init containers may set it, and only to "Always"')

    port_names: set[str] = set()
    for i, port in enumerate(ctr.get("ports") or []):
        p = (*path, "ports", i)
        cp = port.get("containerPort")
        if not isinstance(cp, int) or not 1 <= cp <= MAX_PORT:
            c.add((*p, "containerPort"), "must be between 1 and 65535, inclusive")
        hp = port.get("hostPort")
        if hp is not None and not 0 <= hp <= MAX_PORT:
            c.add((*p, "hostPort"), "must be between 0 and 65535, inclusive")
        if host_network and hp and hp != cp:
            c.add((*p, "hostPort"), "must match containerPort when hostNetwork is true")
        proto = port.get("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            c.add((*p, "protocol"), 'unsupported value: must be "TCP", "UDP" or "SCTP"')
        pname = port.get("name")
        if pname is not None:
            if not is_port_name(pname):
                c.add(
                    (*p, "name"),
                    "must be an IANA_SVC_NAME (at most 15 lowercase alphanumerics or '-')",
                )
            elif pname in port_names:
                c.add((*p, "name"), f"duplicate value {pname!r}")
            port_names.add(pname)
        host_ip = port.get("hostIP")
        if host_ip:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                c.add((*p, "hostIP"), "must be a valid IP address")

    _validate_env(c, (*path, "env"), ctr.get("env") or [], container_names)
    _validate_resources(c, (*path, "resources"), ctr.get("resources") or {})

    mount_paths: set[str] = set()
    for i, mount in enumerate(ctr.get("volumeMounts") or []):
        p = (*path, "volumeMounts", i)
        if mount.get("name") not in volumes:
            c.add((*p, "name"), f"not found: no volume named {mount.get('name')!r}")
        mp = mount.get("mountPath") or ""
        if not mp:
            c.add((*p, "mountPath"), "required value")
        else:
            _check_absolute_path(c, (*p, "mountPath"), mp)
            normalized = posixpath.normpath(mp)
            if normalized in mount_paths:
                c.add((*p, "mountPath"), "must be unique")
            mount_paths.add(normalized)
        if mount.get("subPath"):
            _check_relative_subpath(c, (*p, "subPath"), mount["subPath"])
        if mount.get("subPathExpr"):
            c.add((*p, "subPathExpr"), "subPathExpr is not supported")
        propagation = mount.get("mountPropagation")
        if propagation not in (None, "None", "HostToContainer", "Bidirectional"):
            c.add(
                (*p, "mountPropagation"),
                'unsupported value: must be "None", "HostToContainer" or "Bidirectional"',
            )
        if propagation == "Bidirectional" and not (ctr.get("securityContext") or {}).get(
            "privileged"
        ):
            c.add(
                (*p, "mountPropagation"),
                "Bidirectional mount propagation is available only to privileged containers",
            )
        if mount.get("recursiveReadOnly") not in (None, "Disabled"):
            c.add((*p, "recursiveReadOnly"), "recursive read-only mounts are not supported")

    probes_allowed = not init or sidecar
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = ctr.get(kind)
        if probe is None:
            continue
        if not probes_allowed:
            c.add((*path, kind), "may not be set for init containers without restartPolicy=Always")
            continue
        _validate_probe(c, (*path, kind), probe, kind=kind, port_names=port_names)

    lifecycle = ctr.get("lifecycle")
    if lifecycle:
        if init and not sidecar:
            c.add(
                (*path, "lifecycle"),
                "may not be set for init containers without restartPolicy=Always",
            )
        else:
            for hook in ("postStart", "preStop"):
                if lifecycle.get(hook) is not None:
                    _validate_handler(
                        c,
                        (*path, "lifecycle", hook),
                        lifecycle[hook],
                        allowed=("exec", "httpGet", "tcpSocket", "sleep"),
                        port_names=port_names,
                    )
            if lifecycle.get("stopSignal") is not None:
                c.add((*path, "lifecycle", "stopSignal"), "stopSignal is not supported")

    tmp = ctr.get("terminationMessagePath")
    if tmp is not None:
        _check_absolute_path(c, (*path, "terminationMessagePath"), tmp)
    tmpol = ctr.get("terminationMessagePolicy")
    if tmpol not in (None, "File", "FallbackToLogsOnError"):
        c.add(
            (*path, "terminationMessagePolicy"),
            'unsupported value: must be "File" or "FallbackToLogsOnError"',
        )
    wd = ctr.get("workingDir")
    if wd:
        _check_absolute_path(c, (*path, "workingDir"), wd)
    if ctr.get("securityContext"):
        _validate_security_context(c, (*path, "securityContext"), ctr["securityContext"])


def _validate_volumes(c: _Collector, volumes: list[Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        path: Path = ("spec", "volumes", i)
        name = vol.get("name") or ""
        if not is_dns1123_label(name):
            c.add(
                (*path, "name"),
                "must be a lowercase RFC 1123 label (at most 63 alphanumerics or '-')",
            )
        elif name in names:
            c.add((*path, "name"), f"duplicate value {name!r}")
        names.add(name)
        sources = [k for k in _VOLUME_SOURCES if vol.get(k) is not None]
        if len(sources) > 1:
            c.add((*path, sorted(sources)[1]), "may not specify more than 1 volume type")
            continue
        if not sources:
            continue  # defaults to emptyDir, as the API server does
        source = sources[0]
        body = vol[source]
        if source == "emptyDir":
            medium = body.get("medium") or ""
            if medium not in ("", "Memory"):
                c.add((*path, "emptyDir", "medium"), 'unsupported value: must be "" or "Memory"')
            if body.get("sizeLimit") is not None:
                _validate_quantity(c, (*path, "emptyDir", "sizeLimit"), body["sizeLimit"])
        elif source == "hostPath":
            hp = body.get("path") or ""
            if not hp:
                c.add((*path, "hostPath", "path"), "required value")
            else:
                _check_absolute_path(c, (*path, "hostPath", "path"), hp)
            if (body.get("type") or "") not in _HOST_PATH_TYPES:
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


def validate_pod(document: Mapping[str, Any], *, name_suffix: str = "") -> list[FieldError]:
    """Every semantic error in a schema-valid Pod document."""
    c = _Collector()
    if document.get("apiVersion") != "v1" or document.get("kind") != "Pod":
        c.add(("kind",), "must be a v1 Pod")
        return c.errors
    validate_metadata(c, document.get("metadata") or {}, name_suffix=name_suffix)
    spec = document.get("spec")
    if not isinstance(spec, Mapping):
        c.add(("spec",), "required value")
        return c.errors

    for fname, message in _UNSUPPORTED_POD_FIELDS.items():
        if spec.get(fname) is not None:
            c.add(("spec", fname), message)
    os_name = (spec.get("os") or {}).get("name")
    if os_name not in (None, "linux"):
        c.add(("spec", "os", "name"), 'unsupported value: must be "linux"')

    volume_names = _validate_volumes(c, spec.get("volumes") or [])
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    if not containers:
        c.add(("spec", "containers"), "required value: a pod needs at least one container")
    all_names = {x.get("name") or "" for x in (*containers, *init_containers)}
    seen: set[str] = set()
    host_network = bool(spec.get("hostNetwork"))
    host_ports: set[tuple[str, int, str]] = set()
    for section, items in (("initContainers", init_containers), ("containers", containers)):
        for i, ctr in enumerate(items):
            path: Path = ("spec", section, i)
            name = ctr.get("name") or ""
            if name and name in seen:
                c.add((*path, "name"), f"duplicate value {name!r}")
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
            for j, port in enumerate(ctr.get("ports") or []):
                hp = port.get("hostPort") or (port.get("containerPort") if host_network else 0)
                if hp:
                    key = (port.get("hostIP") or "", hp, port.get("protocol") or "TCP")
                    if key in host_ports:
                        c.add((*path, "ports", j, "hostPort"), f"duplicate value {hp}/{key[2]}")
                    host_ports.add(key)

    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        c.add(
            ("spec", "restartPolicy"), 'unsupported value: must be "Always", "OnFailure" or "Never"'
        )
    _check_non_negative(
        c, ("spec", "terminationGracePeriodSeconds"), spec.get("terminationGracePeriodSeconds")
    )
    for fname in ("hostname", "subdomain"):
        value = spec.get(fname)
        if value and not is_dns1123_label(value):
            c.add(("spec", fname), "must be a lowercase RFC 1123 label")
    if spec.get("shareProcessNamespace") and spec.get("hostPID"):
        c.add(
            ("spec", "shareProcessNamespace"),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        )

    for i, alias in enumerate(spec.get("hostAliases") or []):
        try:
            ipaddress.ip_address(alias.get("ip") or "")
        except ValueError:
            c.add(("spec", "hostAliases", i, "ip"), "must be a valid IP address")
        for j, hostname in enumerate(alias.get("hostnames") or []):
            if not is_dns1123_subdomain(hostname):
                c.add(
                    ("spec", "hostAliases", i, "hostnames", j),
                    "must be a lowercase RFC 1123 subdomain",
                )

    dns_policy = spec.get("dnsPolicy")
    if dns_policy not in (None, "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        c.add(("spec", "dnsPolicy"), "unsupported value")
    dns_config = spec.get("dnsConfig") or {}
    servers = dns_config.get("nameservers") or []
    for i, server in enumerate(servers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            c.add(("spec", "dnsConfig", "nameservers", i), "must be a valid IP address")
    if len(servers) > 3:
        c.add(("spec", "dnsConfig", "nameservers"), "must not have more than 3 nameservers")
    if len(dns_config.get("searches") or []) > 32:
        c.add(("spec", "dnsConfig", "searches"), "must not have more than 32 search paths")
    if dns_policy == "None" and not servers:
        c.add(
            ("spec", "dnsConfig", "nameservers"),
            "must provide at least one DNS nameserver when dnsPolicy is None",
        )

    psc = spec.get("securityContext") or {}
    if psc:
        _validate_security_context(c, ("spec", "securityContext"), psc)
        sysctl_names: set[str] = set()
        for i, sysctl in enumerate(psc.get("sysctls") or []):
            name = sysctl.get("name") or ""
            p = ("spec", "securityContext", "sysctls", i, "name")
            if len(name) > MAX_NAME or _SYSCTL_NAME.match(name) is None:
                c.add(p, "must be a sysctl name such as net.ipv4.ip_local_port_range")
            elif name in sysctl_names:
                c.add(p, f"duplicate value {name!r}")
            elif host_network and name.startswith("net."):
                c.add(p, "net.* sysctls may not be set in a pod with hostNetwork")
            sysctl_names.add(name)
    for i, gate in enumerate(spec.get("readinessGates") or []):
        _check_qualified_name(
            c, ("spec", "readinessGates", i, "conditionType"), gate.get("conditionType") or ""
        )
    return c.errors
