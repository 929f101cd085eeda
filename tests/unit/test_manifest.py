"""Parsing, validation, defaults and identity of Pod manifests (no Docker)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from minikubelet.errors import ManifestError
from minikubelet.model import naming
from minikubelet.model.manifest import MAX_NODES, parse_document, pod_from_document
from minikubelet.model.spec import Pod, PullPolicy, RestartPolicy

NODE = "Node-1"


def base_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                },
                {"name": "side", "image": "busybox"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def build(doc: dict[str, Any], origin: str = "/m/web.yaml", node: str = NODE) -> Pod:
    return pod_from_document(doc, origin=origin, node_name=node, seen=lambda uid: "seen-time")


def errors_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        build(doc)
    assert info.value.origin == "/m/web.yaml"
    return [str(e) for e in info.value.errors]


def test_valid_pod_builds_with_static_name_and_defaults() -> None:
    pod = build(base_pod())
    assert pod.name == "web-node-1"
    assert pod.namespace == "default"
    assert len(pod.uid) == 32
    assert pod.annotations[naming.CONFIG_HASH] == pod.uid
    assert pod.annotations[naming.CONFIG_SOURCE] == "file"
    assert pod.annotations[naming.CONFIG_SEEN] == "seen-time"
    assert pod.spec.restart_policy is RestartPolicy.ALWAYS
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.spec.node_name == "Node-1"
    app, side = pod.spec.containers
    assert app.image_pull_policy is PullPolicy.IF_NOT_PRESENT
    assert side.image_pull_policy is PullPolicy.ALWAYS  # no tag means latest
    assert app.termination_message_path == "/dev/termination-log"
    spec = pod.manifest["spec"]
    assert spec["tolerations"] == [{"operator": "Exists", "effect": "NoExecute"}]
    assert spec["containers"][0]["ports"][0]["protocol"] == "TCP"


def test_uid_ignores_formatting_and_comments() -> None:
    a = parse_document(
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
        b"spec: {containers: [{name: c, image: i}]}\n",
        origin="f",
    )
    b = parse_document(
        b"# a comment\nkind:   Pod\napiVersion: 'v1'\nmetadata:\n  name: x\n"
        b"spec:\n  containers:\n  - image: i\n    name: c\n",
        origin="f",
    )
    assert build(a).uid == build(b).uid


@pytest.mark.parametrize(
    ("change", "same"),
    [
        (lambda d, o, n: (d, o, n), True),
        (lambda d, o, n: (d, "/m/other.yaml", n), False),
        (lambda d, o, n: (d, o, "node-2"), False),
        (
            lambda d, o, n: ({**d, "metadata": {**d["metadata"], "labels": {"app": "x"}}}, o, n),
            False,
        ),
    ],
    ids=["identical", "renamed-file", "other-node", "edited"],
)
def test_uid_depends_on_content_path_and_node(
    change: Callable[[dict[str, Any], str, str], tuple[dict[str, Any], str, str]], same: bool
) -> None:
    doc = base_pod()
    first = build(copy.deepcopy(doc))
    d2, origin, node = change(copy.deepcopy(doc), "/m/web.yaml", NODE)
    second = build(d2, origin=origin, node=node)
    assert (first.uid == second.uid) is same


def test_pinned_uid_is_kept() -> None:
    doc = base_pod()
    doc["metadata"]["uid"] = "0b4f6a54-aaaa-4bbb-8ccc-000000000001"
    assert build(doc).uid == "0b4f6a54-aaaa-4bbb-8ccc-000000000001"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return apply


_DELETE = object()

INVALID = [
    (
        "missing-image",
        _set("spec.containers.0.image", _DELETE),
        "spec.containers[0].image: required value",
    ),
    (
        "unknown-field",
        _set("spec.containers.0.imagee", "x"),
        "spec.containers[0].imagee: unknown field",
    ),
    (
        "wrong-type",
        _set("spec.containers.0.ports.0.containerPort", "80"),
        "spec.containers[0].ports[0].containerPort: expected integer",
    ),
    (
        "duplicate-container",
        _set("spec.containers.1.name", "app"),
        "spec.containers[1].name: duplicate value 'app'",
    ),
    (
        "duplicate-volume",
        _set("spec.volumes", [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]),
        "spec.volumes[1].name: duplicate value 'data'",
    ),
    (
        "mount-names-no-volume",
        _set("spec.containers.0.volumeMounts.0.name", "nope"),
        "spec.containers[0].volumeMounts[0].name: not found",
    ),
    (
        "bad-pod-name",
        _set("metadata.name", "Web_1"),
        "metadata.name: must be a lowercase RFC 1123 subdomain",
    ),
    (
        "bad-container-name",
        _set("spec.containers.0.name", "App"),
        "spec.containers[0].name: must be a lowercase RFC 1123 label",
    ),
    (
        "bad-namespace",
        _set("metadata.namespace", "a.b"),
        "metadata.namespace: must be a lowercase RFC 1123 label",
    ),
    ("unknown-kind", _set("kind", "Service"), "kind: unsupported kind 'Service'"),
    (
        "negative-grace",
        _set("spec.terminationGracePeriodSeconds", -1),
        "spec.terminationGracePeriodSeconds: must be greater than or equal to 0",
    ),
    (
        "port-zero",
        _set("spec.containers.0.ports.0.containerPort", 0),
        "spec.containers[0].ports[0].containerPort: must be between 1 and 65535",
    ),
    (
        "port-too-big",
        _set("spec.containers.0.ports.0.hostPort", 70000),
        "spec.containers[0].ports[0].hostPort: must be between 0 and 65535",
    ),
    (
        "subpath-dotdot",
        _set("spec.containers.0.volumeMounts.0.subPath", "a/../../etc"),
        "spec.containers[0].volumeMounts[0].subPath: must not contain '..'",
    ),
    (
        "subpath-absolute",
        _set("spec.containers.0.volumeMounts.0.subPath", "/etc"),
        "spec.containers[0].volumeMounts[0].subPath: must be a relative path",
    ),
    (
        "relative-mount-path",
        _set("spec.containers.0.volumeMounts.0.mountPath", "data"),
        "spec.containers[0].volumeMounts[0].mountPath: must be an absolute path",
    ),
    (
        "restart-policy",
        _set("spec.restartPolicy", "Sometimes"),
        "spec.restartPolicy: unsupported value",
    ),
    (
        "pull-policy",
        _set("spec.containers.0.imagePullPolicy", "Maybe"),
        "spec.containers[0].imagePullPolicy: unsupported value",
    ),
    ("no-containers", _set("spec.containers", []), "spec.containers: required value"),
    (
        "bad-quantity",
        _set("spec.containers.0.resources", {"limits": {"memory": "lots"}}),
        "spec.containers[0].resources.limits.memory: quantities must match",
    ),
    (
        "request-over-limit",
        _set("spec.containers.0.resources", {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}),
        "spec.containers[0].resources.requests.cpu: must be less than or equal to cpu limit",
    ),
    (
        "negative-quantity",
        _set("spec.containers.0.resources", {"limits": {"cpu": "-1"}}),
        "spec.containers[0].resources.limits.cpu: must be greater than or equal to 0",
    ),
    (
        "hostpath-relative",
        _set("spec.volumes.0", {"name": "data", "hostPath": {"path": "tmp"}}),
        "spec.volumes[0].hostPath.path: must be an absolute path",
    ),
    (
        "hostpath-type",
        _set("spec.volumes.0", {"name": "data", "hostPath": {"path": "/tmp", "type": "Dir"}}),
        "spec.volumes[0].hostPath.type: unsupported value",
    ),
    (
        "configmap-volume",
        _set("spec.volumes.0", {"name": "data", "configMap": {"name": "c"}}),
        "spec.volumes[0].configMap: references API objects",
    ),
    (
        "secret-env",
        _set(
            "spec.containers.0.env",
            [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        "spec.containers[0].env[0].valueFrom.secretKeyRef: references API objects",
    ),
    (
        "bad-fieldref",
        _set(
            "spec.containers.0.env",
            [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}],
        ),
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: unsupported value",
    ),
    (
        "env-value-and-from",
        _set(
            "spec.containers.0.env",
            [
                {
                    "name": "A",
                    "value": "x",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ],
        ),
        "spec.containers[0].env[0].valueFrom: may not be specified",
    ),
    (
        "env-name",
        _set("spec.containers.0.env", [{"name": "A=B", "value": "x"}]),
        "spec.containers[0].env[0].name: must be printable ASCII",
    ),
    (
        "port-name",
        _set("spec.containers.0.ports.0.name", "HTTP_PORT"),
        "spec.containers[0].ports[0].name: must be an IANA_SVC_NAME",
    ),
    (
        "sidecar-policy",
        _set("spec.containers.0.restartPolicy", "Always"),
        "spec.containers[0].restartPolicy: only init containers may set it",
    ),
    (
        "hostnetwork-hostport",
        lambda d: (
            _set("spec.hostNetwork", True)(d),
            _set("spec.containers.0.ports.0.hostPort", 9090)(d),
        ),
        "spec.containers[0].ports[0].hostPort: must match containerPort",
    ),
    (
        "privileged-no-escalation",
        _set(
            "spec.containers.0.securityContext",
            {"privileged": True, "allowPrivilegeEscalation": False},
        ),
        "spec.containers[0].securityContext.allowPrivilegeEscalation: "
        "cannot set allowPrivilegeEscalation to false and privileged to true",
    ),
    (
        "sysctl-name",
        _set("spec.securityContext", {"sysctls": [{"name": "Net.Bad Name", "value": "1"}]}),
        "spec.securityContext.sysctls[0].name: must be a sysctl name",
    ),
    (
        "share-pid-and-host-pid",
        lambda d: (_set("spec.shareProcessNamespace", True)(d), _set("spec.hostPID", True)(d)),
        "spec.shareProcessNamespace: ShareProcessNamespace and HostPID cannot both be enabled",
    ),
    (
        "label-value",
        _set("metadata.labels", {"app": "a b"}),
        "metadata.labels.app: value must be 63 characters or less",
    ),
    (
        "ephemeral",
        _set("spec.ephemeralContainers", [{"name": "e", "image": "i"}]),
        "spec.ephemeralContainers: ephemeral containers are not supported",
    ),
    (
        "probe-two-handlers",
        _set(
            "spec.containers.0.livenessProbe",
            {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        ),
        "spec.containers[0].livenessProbe.tcpSocket: may not specify more than 1 handler type",
    ),
    (
        "liveness-success-threshold",
        _set(
            "spec.containers.0.livenessProbe",
            {"exec": {"command": ["true"]}, "successThreshold": 2},
        ),
        "spec.containers[0].livenessProbe.successThreshold: must be 1",
    ),
    (
        "probe-port-name-unknown",
        _set("spec.containers.0.readinessProbe", {"httpGet": {"port": "admin"}}),
        "spec.containers[0].readinessProbe.httpGet.port: names no port of this container",
    ),
    (
        "probe-on-init",
        _set(
            "spec.initContainers",
            [{"name": "i", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}],
        ),
        "spec.initContainers[0].readinessProbe: may not be set for init containers",
    ),
    (
        "grpc-port",
        _set("spec.containers.0.livenessProbe", {"grpc": {"port": 0}}),
        "spec.containers[0].livenessProbe.grpc.port: must be between 1 and 65535",
    ),
    ("pinned-uid", _set("metadata.uid", "a/b"), "metadata.uid: must be alphanumerics"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [(m, e) for _, m, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_pods_name_the_field(
    mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    doc = base_pod()
    mutate(doc)
    errors = errors_of(doc)
    assert any(e.startswith(expected) for e in errors), errors


def test_every_error_is_reported_at_once() -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["name"] = "Bad"
    doc["spec"]["containers"][1]["image"] = ""
    doc["spec"]["volumes"][0]["name"] = "Data"
    errors = errors_of(doc)
    assert len(errors) >= 3, errors


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"kind: Pod\n  bad: [indent\n", "invalid YAML at line"),
        (b"", "empty manifest"),
        (b"- a\n- b\n", "must be a mapping"),
        (b"a: 1\n---\nb: 2\n", "holds 2 documents"),
        (b"\xff\xfe", "not UTF-8"),
        (b"a: .nan\n", "must be a finite number"),
        (b"1: x\n", "mapping keys must be strings"),
    ],
    ids=["syntax", "empty", "list", "two-docs", "binary", "nan", "complex-key"],
)
def test_unparseable_documents(data: bytes, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_document(data, origin="/m/x.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("/m/x.yaml: ")


def test_yaml_error_does_not_echo_file_content() -> None:
    secret = b"password: hunter2\n\tbad"
    with pytest.raises(ManifestError) as info:
        parse_document(secret, origin="/m/x.yaml")
    assert "hunter2" not in str(info.value)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(ManifestError) as info:
        parse_document("\n".join(lines).encode(), origin="/m/bomb.yaml")
    assert f"more than {MAX_NODES} values" in str(info.value)


def test_json_manifest() -> None:
    doc = parse_document(json.dumps(base_pod()).encode(), origin="/m/web.json", json_only=True)
    assert build(doc, origin="/m/web.json").name == "web-node-1"
    with pytest.raises(ManifestError, match="invalid JSON at line 1"):
        parse_document(b"{nope", origin="/m/web.json", json_only=True)


def test_yaml_timestamps_become_strings() -> None:
    doc = parse_document(b"a: 2024-01-02\n", origin="x")
    assert doc == {"a": "2024-01-02"}
