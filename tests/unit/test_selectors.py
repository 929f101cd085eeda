"""Label and field selectors: what apimachinery accepts, matches and refuses."""

from __future__ import annotations

import pytest

from minikubelet.server.errors import StatusError
from minikubelet.server.selectors import (
    matches_labels,
    parse_field_selector,
    parse_label_selector,
)
from minikubelet.util.timefmt import human_duration

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("missing!=x", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("app in (db, web)", True),
        ("app notin (db,web)", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("n>4", True),
        ("n<5", False),
        ("app>4", False),
        ("example.com/role", False),
    ],
)
def test_label_selector_matches_as_apimachinery(selector: str, expected: bool) -> None:
    assert matches_labels(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize(
    "selector", ["app=", "=web", "app in web", "app in (a", "a b", "app=web,", "-bad=x", "a=b c"]
)
def test_bad_label_selector_is_400(selector: str) -> None:
    if selector == "app=":
        # An empty value is a valid label value: "app=" selects the empty value.
        assert not matches_labels(parse_label_selector(selector), LABELS)
        return
    with pytest.raises(StatusError) as caught:
        parse_label_selector(selector)
    assert caught.value.code == 400


FIELDS = {"metadata.name": ("metadata", "name"), "spec.hostNetwork": ("spec", "hostNetwork")}


def test_field_selector_reads_booleans_and_escapes() -> None:
    obj = {"metadata": {"name": "a,b"}, "spec": {"hostNetwork": True}}
    reqs = parse_field_selector(r"metadata.name=a\,b,spec.hostNetwork=true", FIELDS)
    assert all(r.matches(obj, FIELDS) for r in reqs)
    reqs = parse_field_selector("spec.hostNetwork!=true", FIELDS)
    assert not all(r.matches(obj, FIELDS) for r in reqs)


def test_unknown_field_is_400() -> None:
    with pytest.raises(StatusError) as caught:
        parse_field_selector("status.nope=x", FIELDS)
    assert caught.value.code == 400
    assert "not supported" in caught.value.message


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (303, "5m3s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (10 * 3600, "10h"),
        (3 * 86400 + 3600, "3d1h"),
        (20 * 86400, "20d"),
        (3 * 365 * 86400, "3y"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_as_kubectl(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown
