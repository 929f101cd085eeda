"""Labels read back for pods no source has any more: decoded in one place, never raising."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from minikubelet.container.state import ContainerRecord
from minikubelet.model import naming
from minikubelet.model.spec import ExecAction, HTTPGetAction
from minikubelet.runtime import labels
from tests.unit.helpers import make_pod, rec, sandbox, state_of

POD = make_pod(("c",))


def _with(record: ContainerRecord, **extra: str) -> ContainerRecord:
    return dataclasses.replace(record, labels={**record.labels, **extra})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        (json.dumps({"exec": {"command": ["sh", "-c", "bye"]}}), ExecAction(("sh", "-c", "bye"))),
        (
            # As dockerspec writes it: the defaulted handler of the manifest.
            json.dumps({"httpGet": {"port": 8080, "path": "/stop", "scheme": "HTTP"}}),
            HTTPGetAction(port=8080, path="/stop"),
        ),
        ("{not json", None),
        ("[1, 2]", None),
        (json.dumps({"httpGet": None}), None),
    ],
    ids=["absent", "exec", "http", "not-json", "not-a-mapping", "null-handler"],
)
def test_pre_stop_handler(raw: str, expected: Any) -> None:
    record = _with(rec(POD, "c"), **({naming.PRE_STOP_HANDLER: raw} if raw else {}))
    handler = labels.pre_stop_handler(record)
    if expected is None:
        assert handler is None
    else:
        assert handler == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", {}),
        (json.dumps([{"name": "http", "containerPort": 80}, {"containerPort": 81}]), {"http": 80}),
        (json.dumps([{"name": "x", "containerPort": "nan"}]), {}),
        ("{", {}),
        (json.dumps({"name": "x"}), {}),
    ],
    ids=["absent", "named-only", "bad-port", "not-json", "not-a-list"],
)
def test_named_ports(raw: str, expected: dict[str, int]) -> None:
    record = _with(rec(POD, "c"), **({naming.CONTAINER_PORTS: raw} if raw else {}))
    assert labels.named_ports(record) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30), ("0", 0), ("", None), ("-1", None), ("x", None)],
    ids=["thirty", "zero", "absent", "negative", "garbage"],
)
def test_grace_period(value: str, expected: int | None) -> None:
    sb = sandbox(POD)
    if value:
        sb = _with(sb, **{naming.POD_GRACE_PERIOD: value})
    assert labels.grace_period(state_of(POD, sb, rec(POD, "c"))) == expected


def test_pod_start_time() -> None:
    assert labels.pod_start_time(None) is None
    sb = _with(sandbox(POD), **{naming.POD_START_TIME: "2026-11-30T12:00:00Z"})
    assert labels.pod_start_time(sb) == pytest.approx(1796040000.0)
    assert labels.pod_start_time(_with(sandbox(POD), **{naming.POD_START_TIME: "junk"})) is None
