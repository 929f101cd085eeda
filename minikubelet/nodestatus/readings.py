"""What the node status is computed from, read from the host: static facts once, usage often.

``HostFacts`` are read at start (kernel, OS image, machine and boot IDs,
architecture); ``Readings`` are sampled periodically (memory, the node and
image filesystems, PIDs). Both readers block on the filesystem (statvfs,
/proc), so the caller runs them on a thread, never on the event loop. What
cannot be read is left empty or zero rather than failing the node: the
kubelet too reports a node whose DMI UUID it cannot read.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import psutil

# Go's GOARCH for Python's machine names: the kubernetes.io/arch label and nodeInfo use them.
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def go_arch(machine: str) -> str:
    return _ARCH.get(machine.lower(), machine.lower())


@dataclass(frozen=True, slots=True)
class HostFacts:
    kernel_version: str
    os_image: str
    architecture: str
    machine_id: str
    boot_id: str
    system_uuid: str
    cpu_count: int


@dataclass(frozen=True, slots=True)
class FsReading:
    """A filesystem's size and free space in bytes, and its inodes (0 where it has no
    fixed inode count, as btrfs: no inode signal then)."""

    capacity: int
    available: int
    inodes: int = 0
    inodes_free: int = 0


@dataclass(frozen=True, slots=True)
class Readings:
    memory_capacity: int
    # MemAvailable: what the kernel can give without swapping, the kubelet's
    # memory.available in spirit (it uses capacity minus the root cgroup's working set).
    memory_available: int
    # The filesystem of the agent's state directory (the kubelet's root dir).
    nodefs: FsReading
    # The filesystem holding the engine's images (Docker's root dir); nodefs if unknown.
    imagefs: FsReading
    # The most PIDs the kernel hands out (min of pid_max and threads-max), and how
    # many tasks exist now, as the kubelet's pid.available is computed.
    pid_capacity: int
    pids: int


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def os_image(os_release: str = "/etc/os-release") -> str:
    """PRETTY_NAME of os-release, as cadvisor reports it; "Linux" when there is none."""
    for line in _read(os_release).splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip("\"'")
    return "Linux"


def read_host_facts() -> HostFacts:
    return HostFacts(
        kernel_version=platform.release(),
        os_image=os_image(),
        architecture=go_arch(platform.machine()),
        machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        # Readable by root only, and absent in many VMs: empty then, as on the kubelet.
        system_uuid=_read("/sys/class/dmi/id/product_uuid"),
        cpu_count=psutil.cpu_count() or 1,
    )


def read_fs(path: Path) -> FsReading:
    st = os.statvfs(path)
    return FsReading(
        capacity=st.f_blocks * st.f_frsize,
        # f_bavail: what an unprivileged writer may use, as cadvisor's "available".
        available=st.f_bavail * st.f_frsize,
        inodes=st.f_files,
        inodes_free=st.f_ffree,
    )


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def read_pids() -> tuple[int, int]:
    """(capacity, in use): the fourth field of /proc/loadavg counts every task, as
    sysinfo's procs does for the kubelet, without listing /proc."""
    pid_max = _int(_read("/proc/sys/kernel/pid_max"))
    threads_max = _int(_read("/proc/sys/kernel/threads-max"))
    limits = [v for v in (pid_max, threads_max) if v > 0]
    loadavg = _read("/proc/loadavg").split()
    in_use = _int(loadavg[3].partition("/")[2]) if len(loadavg) > 3 else 0
    return (min(limits) if limits else 0), in_use


def read_readings(nodefs: Path, imagefs: Path | None) -> Readings:
    memory = psutil.virtual_memory()
    node = read_fs(nodefs)
    image = node
    if imagefs is not None:
        # The engine's directory may be out of our sight (another mount namespace):
        # then the node filesystem stands for it.
        with contextlib.suppress(OSError):
            image = read_fs(imagefs)
    pid_capacity, pids = read_pids()
    return Readings(
        memory_capacity=int(memory.total),
        memory_available=int(memory.available),
        nodefs=node,
        imagefs=image,
        pid_capacity=pid_capacity,
        pids=pids,
    )
