"""Property tests: parse → validate → default → build is total on any input.

Whatever the bytes, the pipeline ends in a ``Pod`` or a ``ManifestError``
whose every error names a field (or is about the whole document, such as
invalid YAML); nothing else escapes. Inputs start from a few valid pods and
are mutated (types swapped, nulls inserted, huge integers, huge and unicode
strings, deep nesting), rewritten as YAML with anchors, aliases and merge
keys, cut and corrupted as text, or generated as YAML from scratch.

Profiles (``MINIKUBELET_FUZZ_PROFILE``): ``default`` runs a few hundred
examples per test, derandomized so CI is reproducible; ``long`` (``make
fuzz``) runs 10,000 per test with fresh randomness each time. Neither keeps
a database: a failure prints its reproducing example.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from minikubelet.errors import ManifestError
from minikubelet.model.manifest import check_pod_document, parse_document, pod_from_document
from minikubelet.model.spec import Pod
from tests.corpus import value_paths

settings.register_profile(
    "default",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A failing example's report may hold a multi-megabyte document; hypothesis
# warns about the size of its repr, which filterwarnings=error would turn
# into a failure of its own that hides the real one.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# Applied per test, so other modules' hypothesis settings are left alone.
FUZZ = settings.get_profile(os.environ.get("MINIKUBELET_FUZZ_PROFILE", "default"))

ORIGIN = "/m/fuzz.yaml"
NODE = "node-1"

# Errors about the document as a whole carry no field.
WHOLE_DOCUMENT = (
    "invalid YAML",
    "invalid JSON",
    "not UTF-8",
    "empty manifest",
    "must be a mapping",
    "holds more than one document",
    "nested deeper than",  # JSON nested past the parser's own limit
    "mapping keys must be strings",  # a key of the top-level mapping
    "document took more than",
    "document expands to more than",
)

BASE_PODS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "server",
                    "image": "busybox:1",
                    "command": ["httpd", "-f", "-p", "8080"],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "volumeMounts": [{"name": "www", "mountPath": "/www", "readOnly": True}],
                    "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 3},
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                },
                {
                    "name": "content",
                    "image": "busybox:1",
                    "env": [
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {
                            "name": "MEM",
                            "valueFrom": {
                                "resourceFieldRef": {
                                    "resource": "limits.memory",
                                    "containerName": "server",
                                    "divisor": "1Mi",
                                }
                            },
                        },
                        {"name": "GREETING", "value": "hello $(POD)"},
                    ],
                    "args": ["sh", "-c", "sleep 3600"],
                    "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
                    "securityContext": {
                        "runAsUser": 1000,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "www", "mountPath": "/www", "subPath": "x"}],
                },
            ],
            "volumes": [{"name": "www", "emptyDir": {"sizeLimit": "1Gi"}}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "once", "namespace": "jobs", "uid": "0b4f6a54-aaaa-4bbb-8ccc-1"},
        "spec": {
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 0,
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db.local"]}],
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
            "securityContext": {
                "fsGroup": 2000,
                "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
            },
            "initContainers": [
                {"name": "setup", "image": "busybox@sha256:" + "a" * 64, "command": ["true"]},
                {
                    "name": "sidecar",
                    "image": "busybox:1",
                    "restartPolicy": "Always",
                    "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
                },
            ],
            "containers": [
                {
                    "name": "count",
                    "image": "busybox:1",
                    "command": ["sh", "-c", "echo $i"],
                    "ports": [{"containerPort": 53, "protocol": "UDP", "hostPort": 5353}],
                    "livenessProbe": {"grpc": {"port": 9000}},
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                }
            ],
            "volumes": [{"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tiny"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    },
]


def _note(outcome: str) -> None:
    """Outcomes for ``--hypothesis-show-statistics``: how many examples reach a pod."""
    if currently_in_test_context():
        event(outcome)


def check_error(error: ManifestError) -> None:
    """Every error of a refusal is well formed and names its field."""
    assert error.origin == ORIGIN
    assert error.errors, "a ManifestError with no errors"
    for e in error.errors:
        assert e.message, e
        assert e.field or e.message.startswith(WHOLE_DOCUMENT), e
        assert "\n" not in e.field, e
        assert "\n" not in e.message, e
        assert len(e.field) < 2000, e
        assert len(e.message) < 2000, e


def build(document: Any) -> Pod | ManifestError:
    try:
        return pod_from_document(document, origin=ORIGIN, node_name=NODE, seen=lambda uid: "t")
    except ManifestError as e:
        return e


def check(data: bytes, *, json_only: bool = False) -> Pod | None:
    """The property: a Pod, or a ManifestError whose errors are all well formed."""
    try:
        result = build(parse_document(data, origin=ORIGIN, json_only=json_only))
    except ManifestError as e:
        result = e
    if isinstance(result, ManifestError):
        _note("refused: " + ("field" if result.errors and result.errors[0].field else "document"))
        check_error(result)
        return None
    _note("built a pod")
    pod = result
    assert pod.spec.containers
    assert all(c.name and c.image for c in (*pod.spec.containers, *pod.spec.init_containers))
    assert isinstance(pod.spec.termination_grace_period_seconds, int)
    # What /pods serves must serialise.
    json.dumps(pod.manifest)
    return pod


def check_value(value: Any) -> Pod | None:
    """Both serialisations of a Python value, and the value itself; all must agree."""
    results: list[Pod | None] = []
    try:
        text = yaml.dump(value, Dumper=yaml.CSafeDumper, allow_unicode=True, width=2**30)
    except (yaml.YAMLError, RecursionError, ValueError):
        text = None
    if text is not None:
        results.append(check(text.encode()))
    try:
        data = json.dumps(value, allow_nan=True).encode()
    except (ValueError, RecursionError):
        data = None
    if data is not None:
        results.append(check(data, json_only=True))
    built = build(value)
    if isinstance(built, ManifestError):
        check_error(built)
    direct = built if isinstance(built, Pod) else None
    # Written as YAML, as JSON or passed as it is, a value is the same pod or none.
    assert {p is not None for p in results} <= {direct is not None}
    assert {p.uid for p in results if p is not None} <= ({direct.uid} if direct else set())
    return direct


# --- strategies ---

HUGE = st.sampled_from([10**3, 10**4, 10**5, 10**6])
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "web\n",
            "web",
            "a/b",
            "..",
            "../../../x",
            "2024-02-30",
            "0x1F",
            "1:30",
            "yes",
            "~",
            "null",
            "500m",
            "64Mi",
            "1e400",
            "-1",
            "HTTP",
            "Always",
            "None",
            "\x00",
            "\x1b[31m",
            "ünïcödé",
            "😀",
            "metadata.name",
        ]
    ),
    st.builds(lambda n, c: c * n, HUGE, st.sampled_from(["x", "é", "😀", "\n", "9"])),
)
NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 65535, 65536, 2**31, 2**63 - 1, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(lambda n: int("9" * n), st.integers(1, 4000)),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def _deep(depth: int, as_list: bool) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


DEEP = st.builds(_deep, st.integers(1, 100), st.booleans())


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _swap_type(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return int(value) if value.isdigit() and len(value) < 18 else [value]
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return {}


@st.composite
def mutated_pods(draw: st.DrawFn) -> Any:
    pod = copy.deepcopy(draw(st.sampled_from(BASE_PODS)))
    for _ in range(draw(st.integers(1, 4))):
        paths = value_paths(pod)
        path = draw(st.sampled_from(paths))
        op = draw(
            st.sampled_from(
                ["replace", "swap", "null", "delete", "insert-null", "insert-key", "huge", "deep"]
            )
        )
        if not path:
            if op == "replace":
                return draw(VALUE)
            continue
        parent = _get(pod, path[:-1])
        key = path[-1]
        current = parent[key]
        if op == "replace":
            parent[key] = draw(VALUE)
        elif op == "swap":
            parent[key] = _swap_type(current)
        elif op == "null":
            parent[key] = None
        elif op == "delete":
            del parent[key]
        elif op == "insert-null" and isinstance(current, list):
            current.insert(draw(st.integers(0, len(current))), None)
        elif op == "insert-key" and isinstance(current, dict):
            current[draw(TEXT)] = draw(VALUE)
        elif op == "huge":
            parent[key] = draw(st.one_of(TEXT, NUMBER))
        elif op == "deep":
            parent[key] = draw(DEEP)
    return pod


def _aliased_yaml(value: Any) -> str:
    """YAML in which equal subtrees are written once, then as aliases."""
    return yaml.dump(_intern(value, {}), Dumper=_AliasingDumper, allow_unicode=True, width=2**30)


def _intern(value: Any, seen: dict[str, Any]) -> Any:
    """``value`` with equal mappings and lists made the same object, which PyYAML aliases."""
    if isinstance(value, dict):
        value = {k: _intern(v, seen) for k, v in value.items()}
    elif isinstance(value, list):
        value = [_intern(v, seen) for v in value]
    else:
        return value
    return seen.setdefault(json.dumps(value, sort_keys=True), value)


class _AliasingDumper(yaml.CSafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return not isinstance(data, dict | list)


# Pieces that make YAML text interesting: anchors, aliases, merge keys, tags.
YAML_ATOMS = st.sampled_from(
    [
        "x",
        "'q'",
        '"\\u00e9\\n"',
        "~",
        "",
        "yes",
        "2024-02-30",
        "2024-01-01T00:00:00Z",
        "1:30",
        "0x1F",
        "0b101",
        "017",
        ".inf",
        ".nan",
        "1e3",
        "9" * 30,
        "!!binary aGk=",
        "!!str 12",
        "!!int x",
        "!!float 1.5",
        "!!null",
        "!custom x",
        "!!timestamp 2024-02-30",
        "*a",
        "*b",
        "*undefined",
        "&a x",
        "&b [1, 2]",
        "<<",
        "=",
    ]
)
YAML_KEYS = st.sampled_from(["k", "name", "image", "<<", "'<<'", "1", "on", "~", "? [x]", "*a"])


def _flow(draw: st.DrawFn, depth: int) -> str:
    kind = draw(st.integers(0, 3 if depth < 5 else 0))
    if kind == 0:
        return str(draw(YAML_ATOMS))
    anchor = draw(st.sampled_from(["", "&a ", "&b ", "&c "]))
    if kind == 1:
        items = [_flow(draw, depth + 1) for _ in range(draw(st.integers(0, 4)))]
        return f"{anchor}[{', '.join(items)}]"
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(YAML_KEYS)
        value = (
            draw(st.sampled_from(["*a", "*b", "*c", "[*a, *b]", "[*a, *a, *a]"]))
            if key == "<<" and draw(st.booleans())
            else _flow(draw, depth + 1)
        )
        entries.append(f"{key}: {value}")
    return f"{anchor}{{{', '.join(entries)}}}"


@st.composite
def yaml_fragments(draw: st.DrawFn) -> str:
    return _flow(draw, 0)


POD_WITH_HOLE = (
    "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: &l {{app: p}}}}\n"
    "spec:\n  containers:\n  - &c {{name: c, image: 'i:1'}}\n"
    "  - {{<<: *c, name: d, {field}: {value}}}\n"
)


@st.composite
def corrupted_text(draw: st.DrawFn) -> bytes:
    pod = draw(st.sampled_from(BASE_PODS))
    text = draw(
        st.sampled_from(
            [
                yaml.safe_dump(pod),
                yaml.safe_dump(pod, default_flow_style=True),
                _aliased_yaml({"x": pod, "y": pod}),
                json.dumps(pod),
            ]
        )
    ).encode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["cut", "delete", "insert", "duplicate"]))
        if op == "cut":
            text = text[:at]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif op == "insert":
            piece = draw(
                st.one_of(
                    st.sampled_from(
                        [
                            b":",
                            b"- ",
                            b"&a ",
                            b"*a",
                            b"<<: *a",
                            b"!!binary ",
                            b"\t",
                            b"\x00",
                            b"\xff",
                            b"\n---\n",
                            b"{",
                            b"]",
                            b"'",
                            b'"',
                            b"? ",
                            b"%YAML 1.1\n",
                            b"# c\n",
                        ]
                    ),
                    st.binary(max_size=8),
                )
            )
            text = text[:at] + piece + text[at:]
        else:
            end = min(len(text), at + draw(st.integers(1, 200)))
            text = text[:end] + text[at:end] * draw(st.integers(1, 5)) + text[end:]
    return text


# --- properties ---


@pytest.mark.parametrize("pod", BASE_PODS, ids=[p["metadata"]["name"] for p in BASE_PODS])
def test_base_pods_are_valid(pod: dict[str, Any]) -> None:
    assert check_pod_document(copy.deepcopy(pod), node_name=NODE) == []
    assert check_value(copy.deepcopy(pod)) is not None


@FUZZ
@given(mutated_pods())
def test_mutated_pods(value: Any) -> None:
    check_value(value)


@FUZZ
@given(st.sampled_from(BASE_PODS), st.data())
def test_nulls_and_aliases_do_not_change_a_valid_pod(
    pod: dict[str, Any], data: st.DataObject
) -> None:
    """Nulls for absent fields are unset; anchors and aliases are only a way of writing."""
    expected = check_value(copy.deepcopy(pod))
    assert expected is not None
    variant = copy.deepcopy(pod)
    for path in data.draw(st.lists(st.sampled_from(value_paths(variant)), max_size=5)):
        target = _get(variant, path)
        key = data.draw(st.sampled_from(["hostname", "workingDir", "securityContext", "args"]))
        if isinstance(target, dict) and key not in target:
            target[key] = None
    text = _aliased_yaml(variant)
    got = check(text.encode())
    assert got is not None
    assert got.spec == expected.spec
    assert got.uid == expected.uid


@FUZZ
@given(corrupted_text())
def test_corrupted_text(data: bytes) -> None:
    check(data)
    check(data, json_only=True)


@FUZZ
@given(
    yaml_fragments(),
    st.sampled_from(["env", "args", "resources", "securityContext", "ports", "zz"]),
)
def test_generated_yaml_in_a_pod(fragment: str, field: str) -> None:
    check(POD_WITH_HOLE.format(field=field, value=fragment).encode())


@FUZZ
@given(yaml_fragments())
def test_generated_yaml_documents(fragment: str) -> None:
    check(fragment.encode())
    check(f"a: &a {{x: 1}}\nb: &b [1]\nc: &c {{y: 2}}\nd: {fragment}\n".encode())
