"""The node's resolver settings, which pods with dnsPolicy Default (and, with no cluster
DNS, ClusterFirst) inherit; dockerspec.py turns them into the sandbox's DNS options."""

from __future__ import annotations

from pathlib import Path

from minikubelet.runtime.dockerspec import HostDNS


def read_host_dns(path: str = "/etc/resolv.conf") -> HostDNS:
    """Nameservers, search domains and options of a resolv.conf; empty if unreadable."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return HostDNS()
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            # The last search or domain line wins, as in the resolver.
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return HostDNS(tuple(servers), tuple(searches), tuple(options))
