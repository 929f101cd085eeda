"""Parsing, validation, defaults and identity of Pod manifests (no Docker)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from minikubelet.errors import ManifestError
from minikubelet.model import loader, naming
from minikubelet.model.manifest import MAX_ERRORS, MAX_VALUES, parse_document, pod_from_document
from minikubelet.model.spec import HTTPGetAction, Pod, PullPolicy, RestartPolicy

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
        (b"a: 1\n---\nb: 2\n", "holds more than one document"),
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
    assert f"more than {MAX_VALUES} values" in str(info.value)


def test_json_manifest() -> None:
    doc = parse_document(json.dumps(base_pod()).encode(), origin="/m/web.json", json_only=True)
    assert build(doc, origin="/m/web.json").name == "web-node-1"
    with pytest.raises(ManifestError, match="invalid JSON at line 1"):
        parse_document(b"{nope", origin="/m/web.json", json_only=True)


def test_yaml_timestamps_become_strings() -> None:
    doc = parse_document(b"a: 2024-01-02\n", origin="x")
    assert doc == {"a": "2024-01-02"}


# --- hostile input (issue 9): each seen once as a traceback or a wrong pod ---

ORIGIN = "/m/x.yaml"
GOOD = (
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n"
    "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n"
    "    image: busybox:1\n    command: [sleep, '3600']\n"
)


def from_text(text: str, *, origin: str = ORIGIN) -> Pod:
    document = parse_document(text.encode(), origin=origin, json_only=origin.endswith(".json"))
    return pod_from_document(document, origin=origin, node_name=NODE, seen=lambda uid: "t")


def error_lines(text: str, *, origin: str = ORIGIN) -> list[str]:
    with pytest.raises(ManifestError) as info:
        from_text(text, origin=origin)
    assert info.value.errors
    return str(info.value).splitlines()


def test_impossible_date_is_the_string_written() -> None:
    pod = from_text(GOOD + "    env:\n    - name: D\n      value: 2024-02-30\n")
    assert pod.spec.containers[0].env[0].value == "2024-02-30"


def test_timestamps_keep_their_text() -> None:
    doc = parse_document(b"a: 2001-12-14 21:59:43.10 -5\nb: 2024-01-02\n", origin="x")
    assert doc == {"a": "2001-12-14 21:59:43.10 -5", "b": "2024-01-02"}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("9" * 5000, "spec.terminationGracePeriodSeconds"),
        ("1" + "_1" * 3000, "spec.terminationGracePeriodSeconds"),
        ("0x" + "f" * 17, "spec.terminationGracePeriodSeconds"),
        (str(2**63), "spec.terminationGracePeriodSeconds"),
    ],
    ids=["5000-digits", "underscores", "hex", "int64-max-plus-1"],
)
def test_huge_integer_names_the_field(value: str, field: str) -> None:
    text = GOOD.replace(
        "terminationGracePeriodSeconds: 0", f"terminationGracePeriodSeconds: {value}"
    )
    assert error_lines(text) == [f"{ORIGIN}: {field}: integer out of range: must fit in 64 bits"]


def test_int32_field_out_of_range() -> None:
    text = GOOD + "    ports:\n    - containerPort: 4294967296\n"
    errors = error_lines(text)
    assert f"{ORIGIN}: spec.containers[0].ports[0].containerPort: out of range for int32" in errors


def test_empty_resources_is_unset() -> None:
    pod = from_text(GOOD + "    resources:\n")
    assert pod.spec.containers[0].resources.cpu_limit_milli is None
    assert pod.manifest["spec"]["containers"][0]["resources"] == {}


@pytest.mark.parametrize(
    "empty", ["", " ''", " null", " ~"], ids=["blank", "empty", "null", "tilde"]
)
def test_empty_policies_get_their_defaults(empty: str) -> None:
    text = GOOD + f"    imagePullPolicy:{empty}\n  restartPolicy:{empty}\n  dnsPolicy:{empty}\n"
    pod = from_text(text)
    assert pod.spec.restart_policy is RestartPolicy.ALWAYS
    assert pod.spec.dns_policy.value == "ClusterFirst"
    assert pod.spec.containers[0].image_pull_policy is PullPolicy.IF_NOT_PRESENT


def test_empty_grace_period_gets_the_default() -> None:
    pod = from_text(
        GOOD.replace("terminationGracePeriodSeconds: 0", "terminationGracePeriodSeconds:")
    )
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.manifest["spec"]["terminationGracePeriodSeconds"] == 30


def test_zero_grace_period_stays_zero() -> None:
    assert from_text(GOOD).spec.termination_grace_period_seconds == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("    args: [sh, null]\n", "spec.containers[0].args[1]"),
        ("    command: [sh, ~]\n", "spec.containers[0].command[1]"),
        ("    env: [null]\n", "spec.containers[0].env[0]"),
        ("    ports:\n    -\n", "spec.containers[0].ports[0]"),
    ],
    ids=["args", "command", "env", "ports"],
)
def test_null_in_a_list_names_the_index(extra: str, field: str) -> None:
    assert f"{ORIGIN}: {field}: must not be null" in error_lines(GOOD + extra)


def test_every_problem_is_reported_despite_a_type_error() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  uid: ../../../x\n"
        "spec:\n  containers:\n"
        "  - {name: c, image: i, securityContext: {capabilities: {add: [null]}}}\n"
        "  - {name: c, image: i}\n"
    )
    errors = error_lines(text)
    fields = {line.split(": ")[1] for line in errors}
    assert {
        "metadata.name",
        "metadata.uid",
        "spec.containers[0].securityContext.capabilities.add[0]",
        "spec.containers[1].name",
    } <= fields, errors


def test_wrong_types_everywhere_never_raise() -> None:
    doc = base_pod()
    doc["metadata"]["labels"] = ["a"]
    doc["spec"]["volumes"] = {"name": "data"}
    doc["spec"]["containers"][0]["ports"] = [7, {"containerPort": "x", "name": 5}]
    doc["spec"]["containers"][0]["env"] = "A=B"
    doc["spec"]["containers"][0]["livenessProbe"] = {"httpGet": [], "periodSeconds": "10"}
    doc["spec"]["containers"][1]["securityContext"] = {"capabilities": {"add": [1, True]}}
    doc["spec"]["hostAliases"] = [{"ip": 10, "hostnames": "h"}]
    doc["spec"]["dnsConfig"] = {"nameservers": [1, "x"]}
    errors = errors_of(doc)
    assert all(e.split(": ")[0] for e in errors), errors
    assert "spec.dnsConfig.nameservers[1]: must be a valid IP address" in errors


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("name: web", 'name: "web\\n"'), "metadata.name"),
        (GOOD.replace("- name: c", '- name: "c\\n"'), "spec.containers[0].name"),
        (GOOD.replace("name: web", 'name: web\n  namespace: "ns\\n"'), "metadata.namespace"),
        (GOOD.replace("name: web", 'name: web\n  uid: "abc\\n"'), "metadata.uid"),
        (
            GOOD + '    ports: [{containerPort: 80, name: "http\\n"}]\n',
            "spec.containers[0].ports[0].name",
        ),
    ],
    ids=["pod", "container", "namespace", "uid", "port"],
)
def test_trailing_newline_is_not_a_valid_name(text: str, field: str) -> None:
    assert any(line.startswith(f"{ORIGIN}: {field}: ") for line in error_lines(text))


def test_trailing_newline_in_json_name() -> None:
    text = (
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web\\n"},'
        ' "spec": {"containers": [{"name": "c", "image": "i"}]}}'
    )
    errors = error_lines(text, origin="/m/x.json")
    assert errors[0].startswith("/m/x.json: metadata.name: must be a lowercase RFC 1123 subdomain")


@pytest.mark.parametrize(
    ("uid", "ok"),
    [
        ("0b4f6a54-aaaa-4bbb-8ccc-000000000001", True),
        ("a.b-c", True),
        ("..", False),
        ("a..b", False),
        ("a/b", False),
        ("../../../x", False),
        (".hidden", False),
        ("x" * 129, False),
    ],
)
def test_pinned_uid_pattern(uid: str, ok: bool) -> None:
    doc = base_pod()
    doc["metadata"]["uid"] = uid
    if ok:
        assert build(doc).uid == uid
    else:
        assert any(e.startswith("metadata.uid: ") for e in errors_of(doc))


def _merge_bomb(levels: int, fan: int) -> str:
    lines = ["a0: &a0 {" + ", ".join(f"k{i}: {i}" for i in range(10)) + "}"]
    for n in range(1, levels + 1):
        sources = ", ".join([f"*a{n - 1}"] * fan)
        lines.append(f"a{n}: &a{n} {{<<: [{sources}], x{n}: 1}}")
    return "\n".join(lines) + "\n"


def test_merge_key_bomb_is_bounded_while_built() -> None:
    text = _merge_bomb(levels=8, fan=10)
    assert len(text) < 1000
    started = time.monotonic()
    with pytest.raises(ManifestError) as info:
        parse_document(text.encode(), origin=ORIGIN)
    assert time.monotonic() - started < 2
    [error] = info.value.errors
    assert error.field.startswith("a"), error
    assert f"more than {MAX_VALUES} values" in error.message


def test_merge_keys_as_yaml_defines_them() -> None:
    doc = parse_document(
        b"base: &b {a: 1, b: 1}\nother: &o {b: 2, c: 2}\n"
        b"m: {<<: [*b, *o], a: 3, d: ~}\none: {<<: *o, c: 4}\n",
        origin="x",
    )
    assert doc["m"] == {"a": 3, "b": 1, "c": 2}  # explicit wins, first source wins
    assert doc["one"] == {"b": 2, "c": 4}


def test_aliases_are_copies() -> None:
    doc = parse_document(b"a: &a {x: [1]}\nb: *a\n", origin="x")
    assert doc["a"] == doc["b"]
    assert doc["a"] is not doc["b"]
    assert doc["a"]["x"] is not doc["b"]["x"]


def test_text_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_TEXT_CHARS", 1000)
    text = "a: &a " + "x" * 300 + "\nb: [*a, *a, *a]\n"
    with pytest.raises(ManifestError) as info:
        parse_document(text.encode(), origin=ORIGIN)
    assert str(info.value).startswith(f"{ORIGIN}: b[2]: document expands to more than 1000 ")


def test_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "DEADLINE_SECONDS", -1.0)
    text = "a: [" + ", ".join(["1"] * 1000) + "]\n"
    with pytest.raises(ManifestError) as info:
        parse_document(text.encode(), origin=ORIGIN)
    assert "took more than" in str(info.value)
    assert info.value.errors[0].field.startswith("a[")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: !!binary aGk=\n", 'a: unsupported YAML tag "!!binary"'),
        (b"a: !!set {x}\n", 'a: unsupported YAML tag "!!set"'),
        (b"a: !!omap [x: 1]\n", 'a: unsupported YAML tag "!!omap"'),
        (b"a: !custom x\n", 'a: unsupported YAML tag "!custom"'),
        (b"a: {b: !!python/object:os.system x}\n", "a.b: unsupported YAML tag"),
        (b"a: [*x]\n", "a[0]: alias *x is undefined"),
        (b"a: &x [*x]\n", "a[0]: alias *x refers to a node that contains it"),
        (b"a: {1: x}\n", "a.1: mapping keys must be strings"),
        (b"a: {on: x}\n", "a.on: mapping keys must be strings: this key is a boolean"),
        (b"a: {? [x] : y}\n", "a: mapping keys must be strings, not mappings or lists"),
        (b"a: [.inf]\n", "a[0]: must be a finite number"),
        (b"a: !!int x\n", 'a: "x" is not an integer'),
        (b"a: !!bool maybe\n", 'a: "maybe" is not a boolean'),
        (b"a: {<<: [x]}\n", "a.<<[0]: merge key values must be mappings"),
        (b"a:" + b" [" * 65 + b"]" * 65 + b"\n", "nested deeper than 64 levels"),
        (b"{{{ not yaml", "invalid YAML at line"),
        (b"a: {1: x}\nb: [\n", "invalid YAML at line"),
    ],
    ids=[
        "binary",
        "set",
        "omap",
        "custom-tag",
        "python-tag",
        "undefined-alias",
        "recursive-alias",
        "int-key",
        "bool-key",
        "complex-key",
        "inf",
        "bad-int",
        "bad-bool",
        "bad-merge",
        "too-deep",
        "syntax",
        "syntax-wins",
    ],
)
def test_yaml_that_kubernetes_would_not_take(data: bytes, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_document(data, origin=ORIGIN)
    assert str(info.value).startswith(f"{ORIGIN}: "), str(info.value)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: 22:22\n", "22:22"),  # YAML 1.1 sexagesimal: a string, as in Go, not 1342
        (b"a: 0x1F\n", 31),
        (b"a: 0o17\n", "0o17"),
        (b"a: 017\n", 15),
        (b"a: 1_000\n", 1000),
        (b"a: 80.0\n", 80),
        (b"a: 0.5\n", 0.5),
        (b"a: yes\n", True),
        (b"a: '1'\n", "1"),
        (b"a: ! 12\n", "12"),
        (b"a: !!str 12\n", "12"),
        (b"a: =\n", "="),
        (b"a: <<\n", "<<"),
    ],
)
def test_scalars(data: bytes, expected: object) -> None:
    assert parse_document(data, origin="x") == {"a": expected}


def test_nulls_in_mappings_are_dropped_in_yaml_and_json() -> None:
    assert parse_document(b"a: {b: ~, c: 1}\nd:\n", origin="x") == {"a": {"c": 1}}
    assert parse_document(b'{"a": {"b": null, "c": 1}, "d": null}', origin="x", json_only=True) == {
        "a": {"c": 1}
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": ' + "9" * 5000 + "}", "a: integer out of range"),
        ('{"a": [NaN]}', "a[0]: must be a finite number"),
        ('{"a": {"b": -Infinity}}', "a.b: must be a finite number"),
        ('{"a": 1e400}', "a: must be a finite number"),
        ('{"a": "\\udcff"}', "a: must be valid Unicode text"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
    ],
    ids=["bigint", "nan", "infinity", "overflow", "surrogate", "deep"],
)
def test_json_that_kubernetes_would_not_take(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_document(text.encode(), origin="/m/x.json", json_only=True)
    assert str(info.value).startswith("/m/x.json: ")
    assert expected in str(info.value)


def test_documents_from_elsewhere_are_normalised() -> None:
    doc = base_pod()
    doc["spec"]["restartPolicy"] = None
    doc["spec"]["containers"][0]["resources"] = None
    pod = build(doc)
    assert pod.spec.restart_policy is RestartPolicy.ALWAYS
    doc["spec"]["containers"][0]["args"] = ["a", None]
    assert "spec.containers[0].args[1]: must not be null" in errors_of(doc)
    doc["spec"]["containers"][0]["args"] = [float("nan")]
    assert "spec.containers[0].args[0]: must be a finite number" in errors_of(doc)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("spec.restartPolicy", "", RestartPolicy.ALWAYS),
        ("spec.containers.0.imagePullPolicy", "", PullPolicy.IF_NOT_PRESENT),
        ("spec.containers.0.terminationMessagePath", "", "/dev/termination-log"),
        ("spec.containers.0.ports.0.protocol", "", "TCP"),
        ("metadata.namespace", "", "default"),
    ],
)
def test_empty_strings_are_unset_as_on_the_api_server(
    field: str, value: str, expected: object
) -> None:
    doc = base_pod()
    _set(field, value)(doc)
    pod = build(doc)
    got = {
        "spec.restartPolicy": pod.spec.restart_policy,
        "spec.containers.0.imagePullPolicy": pod.spec.containers[0].image_pull_policy,
        "spec.containers.0.terminationMessagePath": pod.spec.containers[0].termination_message_path,
        "spec.containers.0.ports.0.protocol": pod.spec.containers[0].ports[0].protocol,
        "metadata.namespace": pod.namespace,
    }[field]
    assert got == expected


def test_http_probe_defaults_are_applied_once() -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"port": 8080, "path": ""}}
    probe = build(doc).spec.containers[0].readiness_probe
    assert probe is not None
    assert probe.handler == HTTPGetAction(port=8080, path="/", scheme="HTTP")
    assert (probe.period_seconds, probe.timeout_seconds, probe.failure_threshold) == (10, 1, 3)


def test_nul_in_args_is_refused() -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["args"] = ["a\x00b"]
    assert "spec.containers[0].args[0]: must not contain NUL characters" in errors_of(doc)


def test_many_errors_are_capped() -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["args"] = list(range(5000))
    errors = errors_of(doc)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1].startswith(f"spec.containers[0].args[{MAX_ERRORS}]: and at least ")


def test_messages_do_not_echo_long_values_or_control_characters() -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["volumeMounts"][0]["name"] = "\x1b[31m" + "x" * 10_000
    doc["metadata"]["labels"] = {"a\nb" + "y" * 10_000: "v"}
    errors = errors_of(doc)
    assert all(len(e) < 400 for e in errors), errors
    assert not any("\x1b" in e or "\n" in e for e in errors), errors


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9" * 100_000, "quantity must be at most 64 characters"),
        ("1Gi\nx", "quantities must match"),
        ("1e400", "quantity exponent out of range"),
    ],
    ids=["long", "newline", "exponent"],
)
def test_quantities_are_bounded(value: str, expected: str) -> None:
    doc = base_pod()
    doc["spec"]["containers"][0]["resources"] = {"limits": {"memory": value}}
    errors = errors_of(doc)
    assert any(
        e.startswith(f"spec.containers[0].resources.limits.memory: {expected}") for e in errors
    ), errors
