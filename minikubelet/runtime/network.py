"""The pod network: one Docker bridge network of the agent's, and pod IPs on it.

``IPAllocator`` is the address book (pure); ``BridgeNetwork`` is the network
on the engine: made or found at connect, addresses held by others kept out
of the book, and endpoint releases awaited before an address is reused.

The agent assigns each pod its IP itself (Docker accepts a static address on
a user-defined subnet). Knowing the IP before the sandbox exists means
``status.podIP`` env vars, the hosts file and the status need no inspect
after the sandbox starts, which keeps an inspect off every pod's critical
path. The IP is kept on the sandbox as a label, so it is recovered on
restart, and a pod keeps its IP across sandbox re-creation.

Addresses are handed out round-robin, like host-local IPAM, so an address
just released is not reused at once (stale ARP and conntrack entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minikubelet.errors import ConflictError, MinikubeletError, SandboxError
from minikubelet.model import naming
from minikubelet.model.spec import PodUID
from minikubelet.runtime import calls
from minikubelet.runtime.executor import DockerExecutor

log = logging.getLogger(__name__)

# Pseudo pod uids for addresses held by containers that are not our pods.
FOREIGN = "foreign:"
# How long a new sandbox waits for its pod's previous sandbox to give back the
# pod's address. Docker emits "die" before it releases the endpoint (~0.1 s
# later, with a network "disconnect" event); past this the start goes ahead.
ADDRESS_RELEASE_TIMEOUT = 10.0


class AddressExhaustedError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PodNetwork:
    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


class IPAllocator:
    def __init__(self, network: PodNetwork) -> None:
        self._network = network
        self._by_uid: dict[PodUID, ipaddress.IPv4Address] = {}
        self._used: dict[ipaddress.IPv4Address, PodUID] = {}
        self._last = int(network.gateway)

    @property
    def network(self) -> PodNetwork:
        return self._network

    def _usable(self, ip: ipaddress.IPv4Address) -> bool:
        subnet = self._network.subnet
        reserved = (self._network.gateway, subnet.network_address, subnet.broadcast_address)
        return ip in subnet and ip not in reserved

    def reserve(self, uid: PodUID, address: str) -> bool:
        """Record an address found in use (adoption); False if it is not ours to give."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        if not self._usable(ip):
            return False
        owner = self._used.get(ip)
        if owner is not None and owner != uid:
            return False
        self._by_uid[uid] = ip
        self._used[ip] = uid
        return True

    def allocate(self, uid: PodUID) -> str:
        existing = self._by_uid.get(uid)
        if existing is not None:
            return str(existing)
        subnet = self._network.subnet
        first = int(subnet.network_address) + 1
        last = int(subnet.broadcast_address) - 1
        size = last - first + 1
        for step in range(1, size + 1):
            candidate = ipaddress.IPv4Address(first + (self._last - first + step) % size)
            if candidate not in self._used and self._usable(candidate):
                self._last = int(candidate)
                self._by_uid[uid] = candidate
                self._used[candidate] = uid
                return str(candidate)
        raise AddressExhaustedError(f"no free address left in {subnet}")

    def release(self, uid: PodUID) -> None:
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            self._used.pop(ip, None)

    def release_foreign(self) -> None:
        for uid in [u for u in self._by_uid if u.startswith(FOREIGN)]:
            self.release(uid)


class BridgeNetwork:
    """The agent's network on the engine, and the address book kept against it."""

    def __init__(
        self, executor: DockerExecutor, *, name: str, pod_cidr: str, node_name: str
    ) -> None:
        self._executor = executor
        self.name = name
        self._pod_cidr = pod_cidr
        self._node_name = node_name
        self.id = ""
        # None until ``ensure`` has found the network's subnet.
        self.ipam: IPAllocator | None = None
        # Sandboxes whose endpoint a new sandbox of their pod waits to see released.
        self._release_waiters: dict[str, asyncio.Event] = {}

    async def ensure(self) -> None:
        """Find the network, or make it; the address book follows its subnet."""
        found = await self._executor.call(calls.find_network, self.name)
        if not found:
            subnet = ipaddress.IPv4Network(self._pod_cidr)
            # ConflictError: created concurrently by another agent on this engine
            with contextlib.suppress(ConflictError):
                await self._executor.call(
                    calls.create_network,
                    self.name,
                    subnet=str(subnet),
                    gateway=str(next(subnet.hosts())),
                    labels={naming.NODE: self._node_name, "io.minikubelet.network": "pods"},
                )
            found = await self._executor.call(calls.find_network, self.name)
        data = await self._executor.call(calls.inspect_network, found[0]["Id"])
        configs = (data.get("IPAM") or {}).get("Config") or []
        ipv4 = [c for c in configs if c.get("Subnet") and ":" not in c["Subnet"]]
        if not ipv4:
            raise SandboxError(f"network {self.name} has no IPv4 subnet")
        subnet = ipaddress.IPv4Network(ipv4[0]["Subnet"])
        gateway = ipaddress.IPv4Address(ipv4[0].get("Gateway") or str(next(subnet.hosts())))
        if subnet != ipaddress.IPv4Network(self._pod_cidr):
            log.warning(
                "network %s exists with subnet %s (configured %s); using it",
                self.name,
                subnet,
                self._pod_cidr,
            )
        if self.ipam is None or self.ipam.network.subnet != subnet:
            self.ipam = IPAllocator(PodNetwork(self.name, subnet, gateway))
        self.id = found[0]["Id"]

    async def reserve_foreign(self, is_our_sandbox: Callable[[str], bool]) -> None:
        """Keep addresses held by containers not ours (another agent, a manual
        ``docker run --network``) away from our pods."""
        if self.ipam is None or not self.id:
            return
        data = await self._executor.call(calls.inspect_network, self.id)
        self.ipam.release_foreign()
        for cid, endpoint in (data.get("Containers") or {}).items():
            address = _address(endpoint)
            if address and not is_our_sandbox(cid):
                self.ipam.reserve(PodUID(f"{FOREIGN}{cid}"), address)

    def taken(self, uid: PodUID, address: str) -> None:
        """Someone else holds ``address``: the pod gets another one next time."""
        if self.ipam is not None:
            self.ipam.release(uid)
            self.ipam.reserve(PodUID(f"{FOREIGN}{address}"), address)

    def endpoint_released(self, container_id: str) -> None:
        """The engine released the container's endpoint (disconnect), or destroyed it."""
        released = self._release_waiters.get(container_id)
        if released is not None:
            released.set()

    async def await_released(self, address: str, previous: Sequence[str], *, pod_key: str) -> None:
        """Wait until none of ``previous`` (a pod's older sandboxes) holds ``address``.

        A pod keeps its IP across sandbox re-creation, and the worker
        re-creates at the previous sandbox's "die" event; Docker releases that
        sandbox's endpoint only after emitting it, so a start right away can
        find the address still taken. Callers pass only sandboxes on the same
        address, so a pod without one costs no network inspect.
        """
        if not address or not previous or not self.id:
            return
        # Listening before asking the engine, so a release in between is not missed.
        waiters = {cid: self._release_waiters.setdefault(cid, asyncio.Event()) for cid in previous}
        try:
            data = await self._executor.call(calls.inspect_network, self.id)
            holders = [
                waiters[cid]
                for cid, endpoint in (data.get("Containers") or {}).items()
                if cid in waiters and _address(endpoint) == address
            ]
            if holders:
                log.info("pod %s: waiting for its previous sandbox to release %s", pod_key, address)
                async with asyncio.timeout(ADDRESS_RELEASE_TIMEOUT):
                    for released in holders:
                        await released.wait()
        except MinikubeletError as e:
            log.warning("pod %s: cannot tell who holds %s: %s", pod_key, address, e)
        except TimeoutError:
            log.warning(
                "pod %s: %s not released within %.0fs; starting anyway",
                pod_key,
                address,
                ADDRESS_RELEASE_TIMEOUT,
            )
        finally:
            for cid in previous:
                self._release_waiters.pop(cid, None)


def _address(endpoint: dict[str, object]) -> str:
    """The IPv4 address of a network inspect's endpoint, without its prefix length."""
    return str(endpoint.get("IPv4Address") or "").split("/")[0]
