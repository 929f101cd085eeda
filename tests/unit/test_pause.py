from __future__ import annotations

import io
import os
import platform
import signal
import struct
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from minikubelet.runtime import pause


@pytest.mark.parametrize(
    ("machine", "expected"),
    [("x86_64", "x86_64"), ("AMD64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64")],
)
def test_normalize_machine(machine: str, expected: str) -> None:
    assert pause.normalize_machine(machine) == expected


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(pause.UnsupportedArchitectureError, match="riscv64"):
        pause.pause_binary("riscv64")


@pytest.mark.parametrize(("machine", "e_machine"), [("x86_64", 62), ("aarch64", 183)])
def test_elf_header_describes_one_loadable_segment(machine: str, e_machine: int) -> None:
    binary = pause.pause_binary(machine)
    assert binary[:4] == b"\x7fELF"
    assert binary[4:6] == bytes([2, 1])  # 64-bit little endian
    e_type, e_mach, _, entry, phoff = struct.unpack_from("<HHIQQ", binary, 16)
    assert (e_type, e_mach, phoff) == (2, e_machine, 64)
    p_type, p_flags, p_offset, p_vaddr, _, filesz, memsz = struct.unpack_from(
        "<IIQQQQQ", binary, phoff
    )
    assert (p_type, p_flags, p_offset) == (1, 5, 0)
    assert filesz == memsz == len(binary)
    assert p_vaddr <= entry < p_vaddr + filesz
    assert len(binary) < 512


def test_output_is_deterministic() -> None:
    assert pause.pause_rootfs_tar("x86_64") == pause.pause_rootfs_tar("x86_64")
    with tarfile.open(fileobj=io.BytesIO(pause.pause_rootfs_tar("aarch64"))) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode, member.mtime) == ("pause", 0o755, 0)
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert extracted.read() == pause.pause_binary("aarch64")


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "aarch64"), reason="runs the native program"
)
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT])
def test_native_program_sleeps_until_signalled_then_exits_zero(
    tmp_path: Path, signo: signal.Signals
) -> None:
    program = tmp_path / "pause"
    program.write_bytes(pause.pause_binary(platform.machine()))
    program.chmod(0o755)
    proc = subprocess.Popen([str(program)])
    try:
        time.sleep(0.2)
        assert proc.poll() is None, "pause exited on its own"
        # SIGCHLD is ignored rather than fatal: the program must survive it.
        os.kill(proc.pid, signal.SIGCHLD)
        time.sleep(0.05)
        assert proc.poll() is None
        os.kill(proc.pid, signo)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
