"""The manifest directory as a source of pods (the kubelet's file source).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file directly in the directory
holds one Pod. inotify reports changes as they happen; a full rescan every
``resync_period`` is the safety net for anything inotify missed (an overflow,
a change on a network filesystem).

Unlike the kubelet, a file that stops parsing keeps its last good pod, at
relist too: a typo in an edit should not take a running pod down. The error
is reported until the file is fixed or removed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asyncinotify import Inotify, Mask

from minikubelet.config.source import SeenTimes, SnapshotSink, SourceSnapshot
from minikubelet.errors import FieldError, ManifestError
from minikubelet.model.manifest import parse_document, pod_from_document
from minikubelet.model.spec import Pod

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Editors and `cp` write in several steps; a file is read at close, or this
# long after its last change if it is never closed for writing (mmap, links).
SETTLE_SECONDS = 0.25
MISSING_DIR_RETRY = 1.0

_WATCH_MASK = (
    Mask.CREATE
    | Mask.CLOSE_WRITE
    | Mask.MODIFY
    | Mask.MOVED_TO
    | Mask.MOVED_FROM
    | Mask.DELETE
    | Mask.ATTRIB
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ONLYDIR
)
_GONE = Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF


def is_manifest_name(name: str) -> bool:
    """Dot-files (editor swap files among them) and backups like ``pod.yaml~`` are not manifests."""
    return not name.startswith((".", "#")) and name.endswith(MANIFEST_SUFFIXES)


Stamp = tuple[int, int, int, int]


@dataclass(slots=True)
class _Entry:
    stamp: Stamp | None
    pod: Pod | None
    error: ManifestError | None


def load_manifest_file(
    path: Path, *, node_name: str, seen: Callable[[str], str], max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[Stamp | None, Pod]:
    """Read and validate one manifest file.

    Raises ManifestError, or FileNotFoundError if the file is gone.
    """
    origin = str(path)
    try:
        # O_NONBLOCK: a FIFO dropped in the directory must not hang the agent.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ManifestError(
            origin, [FieldError("", f"cannot open: {os.strerror(e.errno or errno.EIO)}")]
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(origin, [FieldError("", "not a regular file")])
        if st.st_size > max_bytes:
            raise ManifestError(
                origin, [FieldError("", f"is {st.st_size} bytes, over the limit of {max_bytes}")]
            )
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ManifestError(origin, [FieldError("", f"is over the limit of {max_bytes} bytes")])
    document = parse_document(data, origin=origin, json_only=path.suffix == ".json")
    pod = pod_from_document(document, origin=origin, node_name=node_name, seen=seen)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), pod


class FileSource:
    name = "file"

    def __init__(
        self,
        directory: Path,
        *,
        node_name: str,
        seen: SeenTimes,
        sink: SnapshotSink,
        resync_period: float = 20.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._dir = directory
        self._node = node_name
        self._seen = seen
        self._sink = sink
        self._resync = resync_period
        self._max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        # First-seen order of file names: the earlier file wins a name clash.
        self._order: dict[str, int] = {}
        self._next_order = 0
        self._settling: dict[str, asyncio.TimerHandle] = {}
        self._rescan_handle: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        try:
            while True:
                if not self._dir.is_dir():
                    if self._entries or self._next_order == 0:
                        log.warning(
                            "manifest directory %s does not exist; watching for it", self._dir
                        )
                        self._entries.clear()
                        self._next_order = max(self._next_order, 1)
                        self._emit()
                    await asyncio.sleep(MISSING_DIR_RETRY)
                    continue
                await self._watch()
        finally:
            for handle in self._settling.values():
                handle.cancel()

    async def _watch(self) -> None:
        with Inotify() as inotify:
            try:
                inotify.add_watch(self._dir, _WATCH_MASK)
            except OSError as e:
                log.warning("cannot watch %s: %s; retrying", self._dir, e)
                await asyncio.sleep(MISSING_DIR_RETRY)
                return
            # Scan after the watch is in place, so no change falls in between.
            self.rescan()
            self._schedule_rescan()
            try:
                async for event in inotify:
                    if event.mask & _GONE:
                        log.warning("manifest directory %s went away", self._dir)
                        return
                    if event.mask & Mask.Q_OVERFLOW:
                        self.rescan()
                        continue
                    if event.name is None:
                        continue
                    self._on_event(str(event.name), event.mask)
            finally:
                if self._rescan_handle is not None:
                    self._rescan_handle.cancel()

    def _schedule_rescan(self) -> None:
        self._rescan_handle = asyncio.get_running_loop().call_later(
            self._resync, self._periodic_rescan
        )

    def _periodic_rescan(self) -> None:
        self.rescan()
        self._schedule_rescan()

    def _on_event(self, name: str, mask: Mask) -> None:
        if not is_manifest_name(name):
            return
        if mask & (Mask.DELETE | Mask.MOVED_FROM):
            self._cancel_settle(name)
            if self._entries.pop(name, None) is not None:
                self._emit()
            return
        if mask & (Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.ATTRIB):
            self._cancel_settle(name)
            if self._refresh(name, force=True):
                self._emit()
            return
        # CREATE / MODIFY: the writer is probably not done; wait for the close.
        self._cancel_settle(name)
        self._settling[name] = asyncio.get_running_loop().call_later(
            SETTLE_SECONDS, self._settled, name
        )

    def _settled(self, name: str) -> None:
        self._settling.pop(name, None)
        if self._refresh(name, force=True):
            self._emit()

    def _cancel_settle(self, name: str) -> None:
        handle = self._settling.pop(name, None)
        if handle is not None:
            handle.cancel()

    def rescan(self) -> None:
        """Re-list the directory and re-read files whose stat changed; emit the full set."""
        try:
            names = sorted(n for n in os.listdir(self._dir) if is_manifest_name(n))
        except OSError as e:
            log.warning("cannot list %s: %s", self._dir, e)
            return
        for gone in set(self._entries) - set(names):
            del self._entries[gone]
        for name in names:
            self._refresh(name, force=False)
        self._emit()

    def _refresh(self, name: str, *, force: bool) -> bool:
        """Re-read one file; True if what the source reports changed."""
        path = self._dir / name
        entry = self._entries.get(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._entries.pop(name, None) is not None
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            return False
        if (
            not force
            and entry is not None
            and st is not None
            and entry.stamp == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        ):
            return False
        if name not in self._order:
            self._order[name] = self._next_order
            self._next_order += 1
        try:
            stamp, pod = load_manifest_file(
                path, node_name=self._node, seen=self._seen, max_bytes=self._max_bytes
            )
        except FileNotFoundError:
            return self._entries.pop(name, None) is not None
        except ManifestError as e:
            # Keep the last good pod: a half-written or mistyped file changes nothing.
            previous = entry.pod if entry is not None else None
            stamp_now = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) if st else None
            new = _Entry(stamp=stamp_now, pod=previous, error=e)
            changed = entry is None or entry.error is None or str(entry.error) != str(e)
            self._entries[name] = new
            return changed
        changed = entry is None or entry.pod != pod or entry.error is not None
        self._entries[name] = _Entry(stamp=stamp, pod=pod, error=None)
        return changed

    def _emit(self) -> None:
        ordered = sorted(self._entries.items(), key=lambda item: self._order.get(item[0], 0))
        pods = tuple(e.pod for _, e in ordered if e.pod is not None)
        errors = tuple(e.error for _, e in ordered if e.error is not None)
        for name in [n for n in self._order if n not in self._entries]:
            # Forget the order of removed files, so a re-added file queues anew.
            del self._order[name]
        self._sink(SourceSnapshot(source=self.name, pods=pods, errors=errors))
