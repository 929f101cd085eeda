"""The pod network: one Docker bridge network of the agent's, and pod IPs on it.

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

import ipaddress
from dataclasses import dataclass

from minikubelet.model.spec import PodUID

# Pseudo pod uids for addresses held by containers that are not our pods.
FOREIGN = "foreign:"


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

    def get(self, uid: PodUID) -> str | None:
        ip = self._by_uid.get(uid)
        return str(ip) if ip is not None else None

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

    def in_use(self) -> dict[PodUID, str]:
        return {uid: str(ip) for uid, ip in self._by_uid.items()}
