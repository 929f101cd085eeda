"""Names that may become parts of a host path, and paths proved to stay inside a root.

Every path the agent creates, changes, mounts or deletes under
``<state>/pods`` is made here, from a pod uid (from a manifest, or from the
label of a container found on Docker, which anyone with Docker access can
set) and names of volumes and containers. Each name is checked against a
strict pattern first, so ``..``, ``/``, a newline or an empty string never
reaches ``os.path.join``; the joined path is then resolved and must be the
same path, so no symlink on the way can lead it elsewhere.

Pure path logic and ``realpath``; mounting and deleting are ``volumes``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from minikubelet.errors import MountError

# The uid of a static pod: a hash here, any metadata.uid a manifest gives
# (kubelet's rule). ``fullmatch``, so a trailing newline is refused too.
_POD_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,127}")
# Volume and container names: DNS-1123 labels.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class UnsafePathError(MountError):
    """A name that cannot be part of a host path, or a path that would leave its root."""


def valid_pod_uid(uid: str) -> bool:
    return _POD_UID.fullmatch(uid) is not None and ".." not in uid


def valid_name(name: str) -> bool:
    return _DNS_LABEL.fullmatch(name) is not None


def check_pod_uid(uid: str) -> str:
    if not valid_pod_uid(uid):
        raise UnsafePathError(f"pod uid {uid!r} cannot name a directory")
    return uid


def check_name(kind: str, name: str) -> str:
    if not valid_name(name):
        raise UnsafePathError(f"{kind} name {name!r} is not a DNS-1123 label")
    return name


def contained(base: Path | str, *parts: str) -> Path:
    """``base/parts...``, canonical, after proving it resolves to itself.

    ``parts`` must already be checked names; each is still required to be a
    single plain component. An existing symlink anywhere from ``base`` down
    makes the resolved path differ, and the path is refused. ``base`` itself
    is resolved first: an administrator may reach the state directory
    through a symlink.
    """
    real_base = os.path.realpath(base)
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            raise UnsafePathError(f"{part!r} is not a plain path component")
    path = os.path.join(real_base, *parts)
    if os.path.realpath(path) != path:
        raise UnsafePathError(f"{path} leads outside {real_base} (through a symlink)")
    return Path(path)
