"""A sandbox ``pause`` program, assembled here as a tiny static ELF executable.

The pod sandbox only has to hold the pod's namespaces open, reap zombies when
it is PID 1 of a shared PID namespace, and exit promptly on SIGTERM/SIGINT.
Machines here reach no registry and may have no compiler, so instead of
``registry.k8s.io/pause`` the agent can import an image whose only file is this
program. It is a few hundred bytes of hand-encoded machine code:

    rt_sigaction(SIGCHLD, SIG_IGN)       # the kernel reaps children for us
    rt_sigaction(SIGTERM, exit_handler)  # PID 1 ignores default-action signals,
    rt_sigaction(SIGINT,  exit_handler)  # so it needs real handlers to stop
    loop: pause()                        # ppoll(NULL, 0, NULL, NULL) on arm64
    exit_handler: exit_group(0)

The output is deterministic, so the image built from it has a stable ID.
"""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Callable

# Bump when the generated program changes so a stale local image is not reused.
PAUSE_VERSION = "1"

_BASE = 0x400000
_ELF_HEADER_SIZE = 64
_PROGRAM_HEADER_SIZE = 56
_CODE_OFFSET = _ELF_HEADER_SIZE + _PROGRAM_HEADER_SIZE

_SIGINT, _SIGTERM, _SIGCHLD = 2, 15, 17
_SIG_IGN = 1
_SA_RESTORER = 0x04000000
_SIGSET_BYTES = 8

_EM_X86_64 = 62
_EM_AARCH64 = 183


class UnsupportedArchitectureError(ValueError):
    pass


def normalize_machine(machine: str) -> str:
    """``platform.machine()`` / Docker architecture names → the two we support."""
    m = machine.lower()
    if m in ("x86_64", "amd64"):
        return "x86_64"
    if m in ("aarch64", "arm64"):
        return "aarch64"
    raise UnsupportedArchitectureError(f"no built-in pause program for architecture {machine!r}")


# A fixup gets the final address of every label and the address of its own
# first byte, and returns bytes of the length it declared.
Fixup = Callable[[dict[str, int], int], bytes]


class _Assembler:
    """Two-pass layout: pieces have fixed sizes, so labels resolve in one walk."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, Fixup | bytes | str]] = []

    def emit(self, data: bytes) -> None:
        self.pieces.append((len(data), data))

    def fix(self, size: int, fn: Fixup) -> None:
        self.pieces.append((size, fn))

    def label(self, name: str) -> None:
        self.pieces.append((0, name))

    def align(self, n: int) -> None:
        size = sum(s for s, _ in self.pieces)
        self.emit(b"\0" * (-(_CODE_OFFSET + size) % n))

    def assemble(self, origin: int) -> bytes:
        labels: dict[str, int] = {}
        addr = origin
        for size, piece in self.pieces:
            if isinstance(piece, str):
                labels[piece] = addr
            addr += size
        out = bytearray()
        addr = origin
        for size, piece in self.pieces:
            if isinstance(piece, bytes):
                out += piece
            elif callable(piece):
                data = piece(labels, addr)
                if len(data) != size:
                    raise AssertionError(f"fixup at {addr:#x} gave {len(data)} bytes, not {size}")
                out += data
            addr += size
        return bytes(out)


def _sigaction(handler_label: str | None, flags: int) -> Fixup:
    """struct kernel_sigaction {handler, flags, restorer, mask}, 32 bytes on both arches."""

    def build(labels: dict[str, int], _: int) -> bytes:
        handler = labels[handler_label] if handler_label else _SIG_IGN
        # x86_64 refuses to deliver a signal without SA_RESTORER; the handler
        # never returns, so pointing the restorer at it is never exercised.
        restorer = handler if flags & _SA_RESTORER else 0
        return struct.pack("<QQQQ", handler, flags, restorer, 0)

    return build


def _x86_64_code() -> _Assembler:
    a = _Assembler()

    def mov_eax(v: int) -> bytes:
        return b"\xb8" + struct.pack("<I", v)

    def mov_edi(v: int) -> bytes:
        return b"\xbf" + struct.pack("<I", v)

    syscall = b"\x0f\x05"

    def lea_rsi(label: str) -> Fixup:
        # lea rsi, [rip + disp32]; rip is the address after this 7-byte instruction
        return lambda labels, at: b"\x48\x8d\x35" + struct.pack("<i", labels[label] - (at + 7))

    for signo, act in ((_SIGCHLD, "act_ignore"), (_SIGTERM, "act_exit"), (_SIGINT, "act_exit")):
        a.emit(mov_eax(13) + mov_edi(signo))  # rt_sigaction
        a.fix(7, lea_rsi(act))
        a.emit(b"\x31\xd2")  # xor edx, edx: no old action
        a.emit(b"\x41\xba" + struct.pack("<I", _SIGSET_BYTES) + syscall)  # mov r10d, 8
    a.label("loop")
    a.emit(mov_eax(34) + syscall)  # pause
    a.fix(2, lambda labels, at: b"\xeb" + struct.pack("<b", labels["loop"] - (at + 2)))
    a.label("exit")
    a.emit(mov_eax(231) + b"\x31\xff" + syscall)  # exit_group(0)
    a.align(8)
    a.label("act_exit")
    a.fix(32, _sigaction("exit", _SA_RESTORER))
    a.label("act_ignore")
    a.fix(32, _sigaction(None, 0))
    return a


def _aarch64_code() -> _Assembler:
    a = _Assembler()

    def insn(word: int) -> bytes:
        return struct.pack("<I", word)

    def movz(rd: int, imm: int) -> bytes:
        return insn(0xD2800000 | (imm << 5) | rd)

    def adr(rd: int, label: str) -> Fixup:
        def build(labels: dict[str, int], at: int) -> bytes:
            off = labels[label] - at
            return insn(0x10000000 | ((off & 3) << 29) | (((off >> 2) & 0x7FFFF) << 5) | rd)

        return build

    svc = insn(0xD4000001)
    for signo, act in ((_SIGCHLD, "act_ignore"), (_SIGTERM, "act_exit"), (_SIGINT, "act_exit")):
        a.emit(movz(8, 134) + movz(0, signo))  # rt_sigaction
        a.fix(4, adr(1, act))
        a.emit(movz(2, 0) + movz(3, _SIGSET_BYTES) + svc)
    a.label("loop")
    # ppoll(NULL, 0, NULL, NULL): sleeps until a signal, as pause() does elsewhere
    a.emit(movz(8, 73) + movz(0, 0) + movz(1, 0) + movz(2, 0) + movz(3, 0) + svc)
    a.fix(4, lambda labels, at: insn(0x14000000 | (((labels["loop"] - at) >> 2) & 0x3FFFFFF)))
    a.label("exit")
    a.emit(movz(8, 94) + movz(0, 0) + svc)  # exit_group(0)
    a.align(8)
    a.label("act_exit")
    # arm64 returns through the vDSO trampoline when SA_RESTORER is unset.
    a.fix(32, _sigaction("exit", 0))
    a.label("act_ignore")
    a.fix(32, _sigaction(None, 0))
    return a


def pause_binary(machine: str) -> bytes:
    """The static ELF64 executable for ``machine`` (x86_64 or aarch64)."""
    arch = normalize_machine(machine)
    asm, e_machine = (
        (_x86_64_code(), _EM_X86_64) if arch == "x86_64" else (_aarch64_code(), _EM_AARCH64)
    )
    entry = _BASE + _CODE_OFFSET
    code = asm.assemble(entry)
    total = _CODE_OFFSET + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8  # 64-bit, little endian, SysV
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        e_machine,
        1,  # EV_CURRENT
        entry,
        _ELF_HEADER_SIZE,  # program headers right after this header
        0,  # no section headers
        0,
        _ELF_HEADER_SIZE,
        _PROGRAM_HEADER_SIZE,
        1,
        64,
        0,
        0,
    )
    program_header = struct.pack(
        "<IIQQQQQQ",
        1,  # PT_LOAD
        5,  # PF_R | PF_X
        0,
        _BASE,
        _BASE,
        total,
        total,
        0x1000,
    )
    return header + program_header + code


def pause_rootfs_tar(machine: str) -> bytes:
    """A tar holding only ``/pause``, with fixed metadata so its digest never varies."""
    binary = pause_binary(machine)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size = len(binary)
        info.mode = 0o755
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(binary))
    return buf.getvalue()
