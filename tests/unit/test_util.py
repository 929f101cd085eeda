"""Small pure pieces: quantities, back-off, IPs, time formats, runtime cache, settings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerState
from minikubelet.errors import ConfigError
from minikubelet.model.quantity import QuantityError, parse_quantity, to_int, to_milli
from minikubelet.model.spec import PodUID
from minikubelet.runtime.network import AddressExhaustedError, IPAllocator, PodNetwork
from minikubelet.settings import build_settings
from minikubelet.util.backoff import BackOffEntry, BackOffPolicy, ExponentialDelay
from minikubelet.util.timefmt import parse_docker_time, rfc3339
from tests.unit.helpers import make_pod, rec


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1", Decimal(1)),
        (2, Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("64Mi", Decimal(64 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1k", Decimal(1000)),
        ("1e3", Decimal(1000)),
        ("100u", Decimal("0.0001")),
    ],
)
def test_quantity(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Qi", "--1", "1.2.3", True])
def test_bad_quantity(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_quantity_rounding() -> None:
    assert to_milli(parse_quantity("0.0001")) == 1
    assert to_int(parse_quantity("1.5")) == 2


def test_backoff_sequence() -> None:
    policy = BackOffPolicy(initial=10, cap=300)
    entry: BackOffEntry | None = None
    delays = []
    now = 0.0
    for _ in range(7):
        entry = policy.next(entry, now)
        delays.append(entry.delay)
        now += 1
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert entry is not None
    assert policy.in_backoff_since(entry, since=now, now=now + 299)
    assert not policy.in_backoff_since(entry, since=now, now=now + 300)
    # Untouched for more than twice the cap: expired, starts over.
    assert not policy.in_backoff_since(entry, since=now + 700, now=now + 701)
    assert policy.next(entry, now + 601).delay == 10


POLICY = BackOffPolicy(initial=10, cap=300)
ENTRY = BackOffEntry(delay=40, last_update=1000.0)

# (id, exit time, now, in back-off)
IN_BACKOFF = [
    ("inside-the-window", 1100.0, 1139.0, True),
    ("window-counts-from-the-exit", 1100.0, 1140.0, False),
    ("exit-seen-late", 1100.0, 1500.0, False),
    ("just-before-forgotten", 1590.0, 1599.0, True),
    ("forgotten-twice-the-cap-after-the-update", 1590.0, 1600.0, False),
]


@pytest.mark.parametrize(
    ("since", "now", "expected"), [c[1:] for c in IN_BACKOFF], ids=[c[0] for c in IN_BACKOFF]
)
def test_in_backoff_since(since: float, now: float, expected: bool) -> None:
    assert POLICY.in_backoff_since(ENTRY, since=since, now=now) is expected
    assert POLICY.in_backoff_since(None, since=since, now=now) is False


@pytest.mark.parametrize(
    ("since", "retry_at"),
    [(1100.0, 1140.0), (1570.0, 1600.0)],
    ids=["delay-after-the-exit", "when-forgotten"],
)
def test_backoff_retry_at(since: float, retry_at: float) -> None:
    assert POLICY.forgotten_at(ENTRY) == 1600.0
    assert POLICY.retry_at(ENTRY, since) == retry_at
    # A start at that moment is no longer held back.
    assert not POLICY.in_backoff_since(ENTRY, since=since, now=retry_at)


def test_exponential_delay() -> None:
    d = ExponentialDelay(initial=0.1, cap=5)
    assert [d.delay(i) for i in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5]


def _allocator() -> IPAllocator:
    import ipaddress

    subnet = ipaddress.IPv4Network("10.1.0.0/29")
    return IPAllocator(PodNetwork("n", subnet, ipaddress.IPv4Address("10.1.0.1")))


def test_ip_allocation_round_robin_and_reuse() -> None:
    alloc = _allocator()
    a = alloc.allocate(PodUID("a"))
    b = alloc.allocate(PodUID("b"))
    assert (a, b) == ("10.1.0.2", "10.1.0.3")
    assert alloc.allocate(PodUID("a")) == a  # stable per pod
    alloc.release(PodUID("a"))
    assert alloc.allocate(PodUID("c")) == "10.1.0.4"  # not the address just released
    assert alloc.reserve(PodUID("d"), "10.1.0.5")
    assert not alloc.reserve(PodUID("e"), "10.1.0.5")
    assert not alloc.reserve(PodUID("e"), "10.1.0.1")  # the gateway
    assert alloc.allocate(PodUID("f")) == "10.1.0.6"
    assert alloc.allocate(PodUID("g")) == "10.1.0.2"  # wraps to the free one
    with pytest.raises(AddressExhaustedError):
        alloc.allocate(PodUID("h"))


def test_time_formats() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456)
    assert parse_docker_time("2024-01-02T04:04:05.5+01:00") == pytest.approx(1704164645.5)


def test_runtime_cache_moves_forward_only() -> None:
    pod = make_pod(("a",))
    cache = RuntimeCache()
    touched: list[str] = []
    cache.add_listener(touched.append)
    record = rec(pod, "a", state="created", cid="c1")
    cache.put(record)
    cache.died("c1", at=5.0, exit_code=3)
    cache.started("c1", at=4.0)  # a late start event must not revive it
    current = cache.get("c1")
    assert current is not None
    assert current.state is ContainerState.EXITED
    assert current.exit_code == 3
    cache.put(record)  # an older view does not win either
    assert cache.get("c1").state is ContainerState.EXITED  # type: ignore[union-attr]
    cache.remove("c1")
    assert cache.pod_state(pod.uid).empty
    assert touched == [pod.uid, pod.uid, pod.uid]


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("nodeName: from-file\nlisten: 127.0.0.1:9999\nstopPodsOnExit: true\n")
    settings = build_settings(
        config_file=config, overrides={"node_name": "from-flag", "listen": None}
    )
    assert settings.node_name == "from-flag"
    assert settings.listen_port == 9999
    assert settings.stop_pods_on_exit is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("bogus: 1\n", "bogus: unknown setting"),
        ("listen: 0.0.0.0:10255\n", "is not loopback"),
        ("listen: nonsense\n", "is not host:port"),
        ("podCIDR: 10.0.0.0/30\n", "too small"),
        ("stopPodsOnExit: yes-please\n", "must be true or false"),
        ("- a\n", "must be a mapping"),
    ],
)
def test_bad_settings(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        build_settings(config_file=config, overrides={"node_name": "n"})


def test_exposed_listen_needs_tls_and_token(tmp_path: Path) -> None:
    # The files are read at start, not here (tests/unit/test_tls.py has the refusals).
    settings = build_settings(
        config_file=None,
        overrides={
            "node_name": "n",
            "listen": "0.0.0.0:1",
            "auth_token_file": str(tmp_path / "token"),
            "tls_cert_file": str(tmp_path / "cert.pem"),
            "tls_private_key_file": str(tmp_path / "key.pem"),
        },
    )
    assert settings.listen_host == "0.0.0.0"
