"""Who may write manifests: root or the agent's own user, as sshd's StrictModes checks.

Write access to the manifest directory is root on the host (a manifest can
mount ``/`` or run privileged), so a directory or file that another user can
write, by owning it or through its group or other write bits, is refused
(unless ``allowInsecureManifestDir``). The directory's ancestors count too: a
writable parent lets anyone swap the whole directory, unless it is sticky
(``/tmp``), where others cannot rename what they do not own.

Files are checked on the ``fstat`` of the descriptor the manifest is read
from (config/file.py), never on a separate ``stat`` that a swap could slip
between.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

HINT = "only root or the agent's user may write manifests; or allowInsecureManifestDir"


def trusted_uids() -> frozenset[int]:
    return frozenset({0, os.geteuid()})


def insecure_reason(st: os.stat_result, trusted: frozenset[int], *, sticky_ok: bool = False) -> str:
    """Why another user can write what ``st`` describes; "" when nobody else can."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in trusted:
        return f"is owned by uid {st.st_uid}, not by root or the agent's user"
    if sticky_ok and mode & stat.S_ISVTX:
        return ""
    if mode & stat.S_IWOTH:
        return f"is writable by others (mode {mode:04o})"
    if mode & stat.S_IWGRP:
        return f"is group-writable (mode {mode:04o})"
    return ""


def file_insecurity(st: os.stat_result, trusted: frozenset[int]) -> str:
    """For a manifest file already opened: "" when safe, else a message for its error."""
    reason = insecure_reason(st, trusted)
    return f"{reason}; {HINT}" if reason else ""


def directory_insecurity(directory: Path, trusted: frozenset[int]) -> str:
    """Why ``directory`` (or an ancestor) can be written by others; "" when it cannot,
    or when it does not exist (a missing directory is reported elsewhere)."""
    absolute = Path(os.path.abspath(directory))
    real = Path(os.path.realpath(directory))
    try:
        reason = insecure_reason(os.stat(real), trusted)
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"cannot check manifest directory {directory}: {e.strerror}"
    if reason:
        return f"manifest directory {directory} {reason}; {HINT}"
    # Both the path as given and where it leads: a symlink on the way is
    # replaceable by whoever can write the directory holding it.
    ancestors = dict.fromkeys([*absolute.parents, *real.parents])
    for parent in ancestors:
        try:
            reason = insecure_reason(os.stat(parent), trusted, sticky_ok=True)
        except OSError as e:
            reason = f"cannot be checked: {e.strerror}"
        if reason:
            return f"{parent}, a parent of manifest directory {directory}, {reason}; {HINT}"
    return ""
