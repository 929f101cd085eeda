"""Facts about this node: its IP, its capacity."""

from __future__ import annotations

import ipaddress
import socket

import psutil

# Interfaces the container engine makes; the node's address is not on them.
_VIRTUAL_PREFIXES = ("lo", "docker", "br-", "veth", "cni", "flannel", "virbr", "podman")


def detect_host_ip() -> str:
    """The address of the interface holding the default route, else the first real one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # connect() on UDP sends nothing; it only asks the kernel for a route.
        probe.connect(("192.0.2.1", 9))
        address = str(probe.getsockname()[0])
        if not ipaddress.ip_address(address).is_loopback:
            return address
    except OSError:
        pass
    finally:
        probe.close()
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        if name.startswith(_VIRTUAL_PREFIXES):
            continue
        for addr in addresses:
            if addr.family == socket.AF_INET and not ipaddress.ip_address(addr.address).is_loopback:
                return str(addr.address)
    return "127.0.0.1"


CAP_SYS_RESOURCE = 24


def has_capability(cap: int, status_path: str = "/proc/self/status") -> bool:
    """Whether this process holds an effective capability (the engine is assumed to match)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError):
        pass
    return False


def node_cpu_milli() -> int:
    return (psutil.cpu_count() or 1) * 1000


def node_memory_bytes() -> int:
    return int(psutil.virtual_memory().total)


def raise_open_file_limit(cap: int = 1 << 20) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``cap``).

    The default soft limit (1024) is reached by a node with a hundred pods,
    their probes, watchers and Docker connections; the hard limit is what the
    service manager granted. Returns (old soft, new soft).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, cap) if hard != resource.RLIM_INFINITY else cap
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft
