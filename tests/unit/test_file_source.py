"""The manifest directory source with real inotify on a temporary directory (no Docker)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from minikubelet.config.file import FileSource, is_manifest_name
from minikubelet.config.merge import PodConfig
from minikubelet.config.source import SeenTimes, SourceSnapshot
from minikubelet.events import EventRecorder, ObjectRef
from minikubelet.model.spec import Pod, PodUID
from tests.corpus import hostile_manifests

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: busybox:{tag}
"""


class Collector:
    def __init__(self) -> None:
        self.snapshots: list[SourceSnapshot] = []
        self.changed = asyncio.Event()

    def __call__(self, snapshot: SourceSnapshot) -> None:
        self.snapshots.append(snapshot)
        self.changed.set()

    @property
    def last(self) -> SourceSnapshot:
        return self.snapshots[-1]

    async def wait_for(
        self, predicate: Callable[[SourceSnapshot], bool], timeout: float = 3.0
    ) -> SourceSnapshot:
        deadline = time.monotonic() + timeout
        while True:
            if self.snapshots and predicate(self.last):
                return self.last
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching snapshot within {timeout}s; last: {self.snapshots[-1:]}"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[tuple[Path, Collector]]:
    collector = Collector()
    seen = SeenTimes(time.time, str)
    src = FileSource(
        tmp_path, node_name="n1", seen=seen, sink=collector, resync_period=60, max_bytes=4096
    )
    task = asyncio.create_task(src.run())
    try:
        await collector.wait_for(lambda s: True)
        yield tmp_path, collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def names(snapshot: SourceSnapshot) -> list[str]:
    return [p.name for p in snapshot.pods]


@pytest.mark.parametrize(
    ("name", "is_manifest"),
    [
        ("pod.yaml", True),
        ("pod.yml", True),
        ("pod.json", True),
        (".pod.yaml", False),
        (".pod.yaml.swp", False),
        ("pod.yaml~", False),
        ("#pod.yaml#", False),
        ("pod.txt", False),
        ("4913", False),
    ],
)
def test_manifest_names(name: str, is_manifest: bool) -> None:
    assert is_manifest_name(name) is is_manifest


async def test_add_change_remove(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    assert collector.last.pods == ()
    (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
    first = await collector.wait_for(lambda s: names(s) == ["a-n1"], timeout=1.0)
    uid = first.pods[0].uid
    (directory / "a.yaml").write_text(POD.format(name="a", tag="2"))
    changed = await collector.wait_for(lambda s: bool(s.pods) and s.pods[0].uid != uid, timeout=1.0)
    assert changed.pods[0].spec.containers[0].image == "busybox:2"
    (directory / "a.yaml").unlink()
    await collector.wait_for(lambda s: s.pods == (), timeout=1.0)


async def test_comment_only_edit_keeps_uid(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
    first = await collector.wait_for(lambda s: names(s) == ["a-n1"])
    count = len(collector.snapshots)
    (directory / "a.yaml").write_text("# a comment\n" + POD.format(name="a", tag="1"))
    await asyncio.sleep(0.3)
    assert all(s.pods[0].uid == first.pods[0].uid for s in collector.snapshots[count:])


async def test_ignored_files(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    for name in (".hidden.yaml", "pod.yaml~", "notes.txt"):
        (directory / name).write_text(POD.format(name="x", tag="1"))
    (directory / "real.yaml").write_text(POD.format(name="real", tag="1"))
    snapshot = await collector.wait_for(lambda s: names(s) == ["real-n1"])
    assert snapshot.errors == ()


async def test_invalid_file_is_reported_and_keeps_last_good_pod(
    source: tuple[Path, Collector],
) -> None:
    directory, collector = source
    (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
    good = await collector.wait_for(lambda s: names(s) == ["a-n1"])
    (directory / "a.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n"
    )
    bad = await collector.wait_for(lambda s: bool(s.errors))
    assert bad.pods == good.pods
    assert str(bad.errors[0]) == f"{directory / 'a.yaml'}: spec.containers[0].image: required value"
    (directory / "b.yaml").write_text("{{{ not yaml")
    both = await collector.wait_for(lambda s: len(s.errors) == 2)
    assert str(both.errors[1]).startswith(f"{directory / 'b.yaml'}: invalid YAML")


async def test_half_written_file_is_not_acted_on(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    text = POD.format(name="slow", tag="1")
    fd = os.open(directory / "slow.yaml", os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, text[:30].encode())
        await asyncio.sleep(0.4)
        assert all(not s.pods for s in collector.snapshots)
        os.write(fd, text[30:].encode())
    finally:
        os.close(fd)
    await collector.wait_for(lambda s: names(s) == ["slow-n1"] and not s.errors)


async def test_atomic_rename_is_seen(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    tmp = directory / ".tmp-write"
    tmp.write_text(POD.format(name="moved", tag="1"))
    tmp.rename(directory / "moved.yaml")
    await collector.wait_for(lambda s: names(s) == ["moved-n1"], timeout=1.0)


async def test_oversized_file_is_refused(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    (directory / "big.yaml").write_text(POD.format(name="big", tag="1") + "#" * 5000)
    snapshot = await collector.wait_for(lambda s: bool(s.errors))
    assert "over the limit of 4096" in str(snapshot.errors[0])
    assert snapshot.pods == ()


async def test_fifo_does_not_hang(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    os.mkfifo(directory / "fifo.yaml")
    (directory / "after.yaml").write_text(POD.format(name="after", tag="1"))
    snapshot = await collector.wait_for(lambda s: "after-n1" in names(s) and bool(s.errors))
    assert [str(e) for e in snapshot.errors] == [f"{directory / 'fifo.yaml'}: not a regular file"]


async def test_directory_created_later(tmp_path: Path) -> None:
    collector = Collector()
    directory = tmp_path / "later"
    src = FileSource(directory, node_name="n1", seen=SeenTimes(time.time, str), sink=collector)
    task = asyncio.create_task(src.run())
    try:
        await collector.wait_for(lambda s: s.pods == ())
        directory.mkdir()
        (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
        await collector.wait_for(lambda s: names(s) == ["a-n1"], timeout=4.0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _pod_config(
    running: set[PodUID] | None = None,
) -> tuple[PodConfig, list[tuple[dict[PodUID, Pod], bool]], EventRecorder]:
    received: list[tuple[dict[PodUID, Pod], bool]] = []
    recorder = EventRecorder(host="n1", clock=time.time)
    config = PodConfig(
        ["file"],
        sink=lambda desired, ready, held: received.append((dict(desired), ready)),
        recorder=recorder,
        node_ref=ObjectRef("Node", "n1"),
        running=running or set(),
    )
    return config, received, recorder


async def test_duplicate_names_first_wins(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    (directory / "b.yaml").write_text(POD.format(name="same", tag="1"))
    await collector.wait_for(lambda s: len(s.pods) == 1)
    (directory / "a.yaml").write_text(POD.format(name="same", tag="2"))
    snapshot = await collector.wait_for(lambda s: len(s.pods) == 2)
    config, received, recorder = _pod_config()
    config.update(snapshot)
    desired, ready = received[-1]
    assert ready
    assert [p.origin for p in desired.values()] == [str(directory / "b.yaml")]
    assert [str(e) for e in config.errors] == [
        f"{directory / 'a.yaml'}: metadata.name: pod default/same-n1 is already defined by "
        f"{directory / 'b.yaml'}; this one is ignored"
    ]
    assert [e.reason for e in recorder.list()] == ["FailedValidation"]
    config.update(snapshot)  # the same error again is not a new event
    assert recorder.list()[0].count == 1


async def test_duplicate_prefers_running_pod(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    (directory / "b.yaml").write_text(POD.format(name="same", tag="1"))
    (directory / "a.yaml").write_text(POD.format(name="same", tag="2"))
    snapshot = await collector.wait_for(lambda s: len(s.pods) == 2)
    running = next(p for p in snapshot.pods if p.origin.endswith("b.yaml"))
    config, received, _ = _pod_config(running={running.uid})
    config.update(snapshot)
    assert list(received[-1][0]) == [running.uid]


# Each of these once escaped the source (a traceback, or a task that died
# silently so that no later change was ever seen); now each is an error for
# its own file and the source goes on.
HOSTILE = hostile_manifests()


async def test_hostile_files_never_stop_the_source(source: tuple[Path, Collector]) -> None:
    directory, collector = source
    for name, text in HOSTILE.items():
        (directory / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    (directory / "good.yaml").write_text(POD.format(name="good", tag="1"))
    snapshot = await collector.wait_for(lambda s: "good-n1" in names(s), timeout=5.0)
    # Whatever became of each hostile file (a pod with its defaults, or an
    # error naming it), it was handled: no file is unaccounted for.
    accounted = {Path(p.origin).name for p in snapshot.pods} | {
        Path(e.origin).name for e in snapshot.errors
    }
    assert set(HOSTILE) <= accounted
    # And the source still sees later changes.
    (directory / "later.yaml").write_text(POD.format(name="later", tag="1"))
    await collector.wait_for(lambda s: "later-n1" in names(s), timeout=5.0)


async def test_internal_error_is_one_files_error(
    source: tuple[Path, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    from minikubelet.config import file as file_module

    real = file_module.pod_from_document  # type: ignore[attr-defined]

    def buggy(document: dict[str, object], **kwargs: object) -> Pod:
        if str(kwargs.get("origin", "")).endswith("bug.yaml"):
            raise TypeError("a validation bug")
        return real(document, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(file_module, "pod_from_document", buggy)
    directory, collector = source
    (directory / "bug.yaml").write_text(POD.format(name="bug", tag="1"))
    (directory / "fine.yaml").write_text(POD.format(name="fine", tag="1"))
    snapshot = await collector.wait_for(lambda s: names(s) == ["fine-n1"] and bool(s.errors))
    assert [str(e) for e in snapshot.errors] == [
        f"{directory / 'bug.yaml'}: internal error: TypeError"
    ]
    assert snapshot.held == frozenset({str(directory / "bug.yaml")})


async def test_unusable_file_at_start_is_held(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    (tmp_path / "ok.yaml").write_text(POD.format(name="ok", tag="1"))
    collector = Collector()
    src = FileSource(tmp_path, node_name="n1", seen=SeenTimes(time.time, str), sink=collector)
    task = asyncio.create_task(src.run())
    try:
        snapshot = await collector.wait_for(lambda s: bool(s.pods))
        assert snapshot.complete
        assert snapshot.held == frozenset({str(tmp_path / "broken.yaml")})
        assert names(snapshot) == ["ok-n1"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_directory_gone_keeps_pods(tmp_path: Path) -> None:
    directory = tmp_path / "manifests"
    directory.mkdir()
    (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
    collector = Collector()
    src = FileSource(directory, node_name="n1", seen=SeenTimes(time.time, str), sink=collector)
    task = asyncio.create_task(src.run())
    try:
        await collector.wait_for(lambda s: names(s) == ["a-n1"])
        (directory / "a.yaml").rename(tmp_path / "a.yaml")
        await collector.wait_for(lambda s: s.pods == ())
        # A missing directory is a bad moment, not an instruction to stop pods.
        (tmp_path / "a.yaml").rename(directory / "a.yaml")
        await collector.wait_for(lambda s: names(s) == ["a-n1"])
        directory.rename(tmp_path / "elsewhere")
        gone = await collector.wait_for(lambda s: not s.complete, timeout=4.0)
        assert names(gone) == ["a-n1"]
        assert "does not exist" in str(gone.errors[0])
        assert src.directory_error is not None
        (tmp_path / "elsewhere").rename(directory)
        back = await collector.wait_for(lambda s: s.complete, timeout=4.0)
        assert names(back) == ["a-n1"]
        assert back.errors == ()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_pod_config_waits_for_a_complete_snapshot() -> None:
    config, received, _ = _pod_config()
    config.update(SourceSnapshot(source="file", pods=(), complete=False))
    assert config.ready is False
    assert received == [] or received[-1][1] is False
    config.update(SourceSnapshot(source="file", pods=(), held=frozenset({"/m/x.yaml"})))
    assert config.ready is True
    config.update(SourceSnapshot(source="file", pods=(), complete=False))
    assert config.ready is True


def test_seen_times_are_kept_per_uid_and_forgotten_for_gone_pods() -> None:
    clock = iter([1.0, 2.0, 3.0])
    seen = SeenTimes(lambda: next(clock), str)
    assert seen("a") == "1.0"
    assert seen("b") == "2.0"
    assert seen("a") == "1.0"
    seen.forget_except({"a"})
    assert len(seen) == 1
    assert seen("b") == "3.0"  # a pod seen again later is seen anew


def _write_with_mode(path: Path, text: str, mode: int) -> None:
    """Written aside under a dot-name (ignored) and renamed in, so no reader ever
    sees the file with another mode than ``mode``."""
    temp = path.with_name("." + path.name)
    temp.write_text(text)
    temp.chmod(mode)
    temp.rename(path)


async def test_a_group_writable_file_is_refused_and_the_others_run(
    source: tuple[Path, Collector],
) -> None:
    directory, collector = source
    (directory / "good.yaml").write_text(POD.format(name="good", tag="1"))
    _write_with_mode(directory / "open.yaml", POD.format(name="open", tag="1"), 0o664)
    snapshot = await collector.wait_for(lambda s: names(s) == ["good-n1"] and bool(s.errors))
    (error,) = snapshot.errors
    assert error.origin == str(directory / "open.yaml")
    assert "group-writable" in str(error)
    assert str(directory / "open.yaml") in snapshot.held
    # Fixing the mode is a change the source sees (inotify ATTRIB): the pod comes.
    (directory / "open.yaml").chmod(0o644)
    fixed = await collector.wait_for(lambda s: sorted(names(s)) == ["good-n1", "open-n1"])
    assert fixed.errors == ()


async def test_a_directory_made_group_writable_stops_being_read(
    source: tuple[Path, Collector],
) -> None:
    directory, collector = source
    (directory / "a.yaml").write_text(POD.format(name="a", tag="1"))
    await collector.wait_for(lambda s: names(s) == ["a-n1"])
    directory.chmod(0o770)
    try:
        refused = await collector.wait_for(lambda s: bool(s.errors))
        assert "group-writable" in str(refused.errors[0])
        assert names(refused) == ["a-n1"]  # what runs is kept, as for a missing directory
        (directory / "b.yaml").write_text(POD.format(name="b", tag="1"))
        await asyncio.sleep(0.5)
        assert names(collector.last) == ["a-n1"]
    finally:
        directory.chmod(0o700)
    back = await collector.wait_for(lambda s: not s.errors and len(s.pods) == 2)
    assert sorted(names(back)) == ["a-n1", "b-n1"]


async def test_a_new_resync_period_takes_effect_at_once(tmp_path: Path) -> None:
    src = FileSource(tmp_path, node_name="n1", seen=SeenTimes(time.time, str), sink=Collector())
    rescans = 0
    plain = src._request_rescan

    def counting() -> None:
        nonlocal rescans
        rescans += 1
        plain()

    src._request_rescan = counting  # type: ignore[method-assign]
    src.set_resync_period(3600)
    task = asyncio.create_task(src.run())
    try:
        await asyncio.sleep(0.3)
        before = rescans
        src.set_resync_period(0.05)
        await asyncio.sleep(0.5)
        assert rescans - before >= 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_no_inotify_instance_left_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from asyncinotify import Inotify as real

    from minikubelet.config import file as file_module

    exhausted = True

    def inotify() -> object:
        if exhausted:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real()

    monkeypatch.setattr(file_module, "Inotify", inotify)
    collector = Collector()
    src = FileSource(tmp_path, node_name="n1", seen=SeenTimes(time.time, str), sink=collector)
    task = asyncio.create_task(src.run())
    try:
        await collector.wait_for(lambda s: any("cannot watch" in str(e) for e in s.errors))
        assert not task.done()
        exhausted = False
        (tmp_path / "a.yaml").write_text(POD.format(name="a", tag="1"))
        await collector.wait_for(lambda s: names(s) == ["a-n1"] and not s.errors)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
