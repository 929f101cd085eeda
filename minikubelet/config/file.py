"""The manifest directory as a source of pods (the kubelet's file source).

Every ``*.yaml``, ``*.yml`` and ``*.json`` file directly in the directory
holds one Pod. inotify reports changes as they happen; a full rescan every
``resync_period`` is the safety net for anything inotify missed (an overflow,
a change on a network filesystem).

Files are untrusted input, so reading and validating them runs on a thread of
its own, off the event loop, one file at a time: a slow or huge file delays
only other manifests, never a probe or a pod's restart. The watcher only
marks names dirty; one processing task reads them and emits snapshots, so
there is a single writer of the source's state.

Nothing is lost by a bad moment. Unlike the kubelet, a file that stops
parsing keeps its last good pod, at relist too: a typo in an edit should not
take a running pod down. A file that exists but cannot be used right now, even
at start (stricter rules after an upgrade, no file descriptors left), is
reported as *held*: the pods already running from it keep running. A missing
or unlistable directory keeps every pod the source had and says so in its
errors; only a file that is really gone removes its pod.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asyncinotify import Inotify, Mask

from minikubelet.config.source import SeenTimes, SnapshotSink, SourceSnapshot
from minikubelet.config.strict import directory_insecurity, file_insecurity, trusted_uids
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
# After a listing failed (EMFILE, EIO), try again soon rather than at the next resync.
LIST_RETRY = 1.0

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


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(slots=True)
class _Entry:
    stamp: Stamp | None
    pod: Pod | None
    error: ManifestError | None


def load_manifest_file(
    path: Path,
    *,
    node_name: str,
    seen: Callable[[str], str],
    max_bytes: int = DEFAULT_MAX_BYTES,
    trusted: frozenset[int] | None = None,
) -> tuple[Stamp | None, Pod]:
    """Read and validate one manifest file.

    With ``trusted`` (uids), a file another user can write is refused
    (config/strict.py), judged on the opened descriptor.
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
        insecure = file_insecurity(st, trusted) if trusted is not None else ""
        if insecure:
            raise ManifestError(origin, [FieldError("", insecure)])
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
    except OSError as e:
        raise ManifestError(
            origin, [FieldError("", f"cannot read: {os.strerror(e.errno or errno.EIO)}")]
        ) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ManifestError(origin, [FieldError("", f"is over the limit of {max_bytes} bytes")])
    document = parse_document(data, origin=origin, json_only=path.suffix == ".json")
    pod = pod_from_document(document, origin=origin, node_name=node_name, seen=seen)
    return _stamp(st), pod


def _load_contained(
    path: Path,
    *,
    node_name: str,
    seen: Callable[[str], str],
    max_bytes: int,
    trusted: frozenset[int] | None,
) -> tuple[Stamp | None, Pod | None, ManifestError | None]:
    """``load_manifest_file`` that turns any failure into an error for this file alone.

    A bug in validation met by one odd file must not stop the source, and so
    every other pod: that file is reported, the others go on.
    """
    try:
        stamp, pod = load_manifest_file(
            path, node_name=node_name, seen=seen, max_bytes=max_bytes, trusted=trusted
        )
    except FileNotFoundError:
        raise
    except ManifestError as e:
        return None, None, e
    except Exception as e:
        log.exception("internal error reading manifest %s", path)
        return (
            None,
            None,
            ManifestError(str(path), [FieldError("", f"internal error: {type(e).__name__}")]),
        )
    return stamp, pod, None


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
        strict: bool = True,
    ) -> None:
        self._dir = directory
        # Users allowed to write the directory and its files; None: anyone (not strict).
        self._trusted = trusted_uids() if strict else None
        # Why the directory is not trusted now (config/strict.py); no file is read meanwhile.
        self._insecure = ""
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
        # Work for the processing task: names to re-read, or a whole rescan.
        self._dirty: set[str] = set()
        self._rescan_wanted = False
        self._wake = asyncio.Event()
        self._resync_changed = asyncio.Event()
        # Why the directory itself cannot be read now; pods are kept meanwhile.
        self._dir_error: str | None = None
        self._complete = False
        self._emitted_once = False
        # One thread: manifests are read one at a time, never on the event loop.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="manifests")

    @property
    def directory_error(self) -> str | None:
        """Why the manifest directory cannot be read right now, for /healthz."""
        return self._dir_error

    def set_resync_period(self, seconds: float) -> None:
        """Takes effect now (SIGHUP), not after the period running out, which may be long."""
        self._resync = seconds
        self._resync_changed.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch_loop(), name="manifests-watch")
                group.create_task(self._process_loop(), name="manifests-process")
                group.create_task(self._resync_loop(), name="manifests-resync")
        finally:
            for handle in self._settling.values():
                handle.cancel()
            self._reader.shutdown(wait=False, cancel_futures=True)

    # --- watching: only marks work, never reads files ---

    async def _watch_loop(self) -> None:
        while True:
            if not self._dir.is_dir():
                self._directory_unusable(f"manifest directory {self._dir} does not exist")
                await asyncio.sleep(MISSING_DIR_RETRY)
                continue
            await self._watch()

    def _directory_unusable(self, reason: str) -> None:
        if self._dir_error != reason:
            log.warning("%s; keeping its pods and watching for it", reason)
            self._dir_error = reason
            self._emit()

    async def _watch(self) -> None:
        try:
            inotify = Inotify()
        except OSError as e:
            # EMFILE here is the system's inotify instance limit (128 per user by
            # default), shared with every other program: wait for one to free up
            # rather than take the agent down; the periodic rescan goes on meanwhile.
            self._directory_unusable(f"cannot watch {self._dir}: {os.strerror(e.errno or 0)}")
            await asyncio.sleep(MISSING_DIR_RETRY)
            return
        with inotify:
            try:
                inotify.add_watch(self._dir, _WATCH_MASK)
            except OSError as e:
                self._directory_unusable(f"cannot watch {self._dir}: {os.strerror(e.errno or 0)}")
                await asyncio.sleep(MISSING_DIR_RETRY)
                return
            # Scan after the watch is in place, so no change falls in between.
            self._request_rescan()
            async for event in inotify:
                if event.mask & _GONE:
                    log.warning("manifest directory %s went away", self._dir)
                    return
                if event.mask & Mask.Q_OVERFLOW:
                    self._request_rescan()
                    continue
                if event.name is None:
                    if event.mask & Mask.ATTRIB:
                        # The directory's own mode or owner changed: is it still trusted?
                        self._request_rescan()
                    continue
                self._on_event(str(event.name), event.mask)

    async def _resync_loop(self) -> None:
        while True:
            self._resync_changed.clear()
            try:
                await asyncio.wait_for(self._resync_changed.wait(), self._resync)
            except TimeoutError:
                self._request_rescan()

    def _request_rescan(self) -> None:
        self._rescan_wanted = True
        self._wake.set()

    def _mark(self, name: str) -> None:
        self._dirty.add(name)
        self._wake.set()

    def _on_event(self, name: str, mask: Mask) -> None:
        if not is_manifest_name(name):
            return
        self._cancel_settle(name)
        if mask & (Mask.DELETE | Mask.MOVED_FROM | Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.ATTRIB):
            self._mark(name)
            return
        # CREATE / MODIFY: the writer is probably not done; wait for the close.
        self._settling[name] = asyncio.get_running_loop().call_later(
            SETTLE_SECONDS, self._settled, name
        )

    def _settled(self, name: str) -> None:
        self._settling.pop(name, None)
        self._mark(name)

    def _cancel_settle(self, name: str) -> None:
        handle = self._settling.pop(name, None)
        if handle is not None:
            handle.cancel()

    # --- processing: the only writer of entries ---

    async def _process_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            changed = False
            if self._rescan_wanted:
                self._rescan_wanted = False
                self._dirty.clear()
                changed = await self._rescan()
            while self._dirty:
                name = self._dirty.pop()
                changed = await self._refresh(name, force=True) or changed
            if changed or not self._emitted_once:
                self._emit()

    async def _rescan(self) -> bool:
        """Re-list the directory and re-read files whose stat changed."""
        loop = asyncio.get_running_loop()
        try:
            listing = await loop.run_in_executor(self._reader, os.listdir, self._dir)
        except OSError as e:
            reason = f"cannot list {self._dir}: {os.strerror(e.errno or errno.EIO)}"
            if e.errno == errno.ENOENT:
                reason = f"manifest directory {self._dir} does not exist"
            self._directory_unusable(reason)
            loop.call_later(LIST_RETRY, self._request_rescan)
            return False
        if self._trusted is not None:
            insecure = await loop.run_in_executor(
                self._reader, directory_insecurity, self._dir, self._trusted
            )
            self._insecure = insecure
            if insecure:
                self._directory_unusable(insecure)
                return False
        names = sorted(n for n in listing if is_manifest_name(n))
        changed = self._dir_error is not None or not self._complete
        self._dir_error = None
        self._complete = True
        for gone in set(self._entries) - set(names):
            del self._entries[gone]
            changed = True
        for name in names:
            changed = await self._refresh(name, force=False) or changed
        return changed

    async def _refresh(self, name: str, *, force: bool) -> bool:
        """Re-read one file; True if what the source reports changed."""
        if self._insecure:
            return False
        path = self._dir / name
        entry = self._entries.get(name)
        try:
            st: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            return self._entries.pop(name, None) is not None
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            return self._entries.pop(name, None) is not None
        if not force and entry is not None and st is not None and entry.stamp == _stamp(st):
            return False
        if name not in self._order:
            self._order[name] = self._next_order
            self._next_order += 1
        try:
            stamp, pod, error = await asyncio.get_running_loop().run_in_executor(
                self._reader, self._load, path
            )
        except FileNotFoundError:
            return self._entries.pop(name, None) is not None
        if error is not None:
            # Keep the last good pod: a half-written or mistyped file changes nothing.
            previous = entry.pod if entry is not None else None
            new = _Entry(stamp=_stamp(st) if st else None, pod=previous, error=error)
            changed = entry is None or entry.error is None or str(entry.error) != str(error)
            self._entries[name] = new
            return changed
        changed = entry is None or entry.pod != pod or entry.error is not None
        self._entries[name] = _Entry(stamp=stamp, pod=pod, error=None)
        return changed

    def _load(self, path: Path) -> tuple[Stamp | None, Pod | None, ManifestError | None]:
        return _load_contained(
            path,
            node_name=self._node,
            seen=self._seen,
            max_bytes=self._max_bytes,
            trusted=self._trusted,
        )

    def _emit(self) -> None:
        ordered = sorted(self._entries.items(), key=lambda item: self._order.get(item[0], 0))
        pods = tuple(e.pod for _, e in ordered if e.pod is not None)
        errors = [e.error for _, e in ordered if e.error is not None]
        # Files that exist but give no pod now: what runs from them is kept.
        held = frozenset(str(self._dir / n) for n, e in ordered if e.pod is None)
        if self._dir_error is not None:
            errors.insert(0, ManifestError(str(self._dir), [FieldError("", self._dir_error)]))
        for name in [n for n in self._order if n not in self._entries]:
            # Forget the order of removed files, so a re-added file queues anew.
            del self._order[name]
        self._emitted_once = True
        self._sink(
            SourceSnapshot(
                source=self.name,
                pods=pods,
                errors=tuple(errors),
                held=held,
                complete=self._complete and self._dir_error is None,
            )
        )
