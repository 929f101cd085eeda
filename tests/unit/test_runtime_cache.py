"""The runtime cache across relists: stale until one succeeds, never reverted by one (no Docker).

A relist lists the engine, awaits inspects, then merges; events and the
agent's own calls go on changing the cache meanwhile. These tests play the
relist's steps by hand around such changes.
"""

from __future__ import annotations

import dataclasses

import pytest

from minikubelet.container.cache import RuntimeCache
from minikubelet.container.state import ContainerRecord, ContainerState
from minikubelet.model.spec import PodUID
from tests.unit.helpers import make_pod, rec

POD = make_pod(("a", "b"))


def running(name: str, cid: str) -> ContainerRecord:
    return rec(POD, name, cid=cid)


def dead(record: ContainerRecord, *, code: int = 1) -> ContainerRecord:
    return dataclasses.replace(record, state=ContainerState.EXITED, exit_code=code, finished_at=9.0)


@pytest.fixture
def cache() -> RuntimeCache:
    cache = RuntimeCache()
    cache.put(running("a", "c-a"))
    cache.put(running("b", "c-b"))
    return cache


def test_relist_failure_keeps_the_cache_stale_until_one_succeeds(cache: RuntimeCache) -> None:
    woken: list[PodUID] = []
    cache.add_listener(woken.append)
    cache.events_lost()
    cache.events_resumed()
    assert cache.stale
    with pytest.raises(ConnectionError), cache.observing():
        raise ConnectionError("engine went away mid-list")
    assert cache.stale
    assert woken == []
    with cache.observing() as mark:
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[])
    assert not cache.stale
    assert woken == [POD.uid]  # every pod waited: all are woken
    assert cache.get("c-a") == running("a", "c-a")


def test_relist_begun_before_events_flowed_again_leaves_the_cache_stale(
    cache: RuntimeCache,
) -> None:
    cache.events_lost()
    with cache.observing() as mark:
        # The list may predate deaths that no stream reported.
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[])
    assert cache.stale
    cache.events_resumed()
    with cache.observing() as mark:
        cache.events_lost()  # lost again while the list was in flight
        cache.events_resumed()
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[])
    assert cache.stale
    with cache.observing() as mark:
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[])
    assert not cache.stale


def test_death_handled_while_the_list_is_in_flight_stays_dead(cache: RuntimeCache) -> None:
    a = running("a", "c-a")
    with cache.observing() as mark:
        listed = [dataclasses.replace(a, started_at=1.0)]  # inspected as running
        cache.died("c-a", at=9.0, exit_code=137)  # the die event meanwhile
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=listed)
    after = cache.get("c-a")
    assert after is not None
    assert after.state is ContainerState.EXITED
    assert after.exit_code == 137


def test_death_the_list_saw_before_its_event_is_taken(cache: RuntimeCache) -> None:
    a = running("a", "c-a")
    with cache.observing() as mark:
        cache.update("c-a", message="")  # touched after the mark, still running
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[dead(a, code=3)])
    after = cache.get("c-a")
    assert after is not None
    assert after.exit_code == 3


def test_destroy_while_the_list_is_in_flight_is_not_resurrected(cache: RuntimeCache) -> None:
    a = running("a", "c-a")
    with cache.observing() as mark:
        cache.remove("c-a")  # the destroy event, after the list named it
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[dead(a)])
    assert cache.get("c-a") is None
    assert [r.id for r in cache.pod_state(POD.uid).containers] == ["c-b"]


def test_destroy_of_a_container_the_list_found_new_is_not_adopted() -> None:
    cache = RuntimeCache()
    with cache.observing() as mark:
        cache.remove("c-x")  # its destroy event, before the relist caught up
        cache.finish_relist(mark, listed=["c-x"], records=[running("a", "c-x")])
    assert cache.get("c-x") is None


def test_container_created_while_the_list_is_in_flight_is_kept(cache: RuntimeCache) -> None:
    with cache.observing() as mark:
        cache.put(rec(POD, "a", attempt=1, state="created", cid="c-a2"))  # our own create
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[])
    assert cache.get("c-a2") is not None


def test_relist_drops_what_went_away_and_adopts_what_is_new(cache: RuntimeCache) -> None:
    woken: list[PodUID] = []
    cache.add_listener(woken.append)
    other = make_pod(("x",), name="other")
    with cache.observing() as mark:
        cache.finish_relist(mark, listed=["c-b", "c-x"], records=[rec(other, "x", cid="c-x")])
    assert cache.get("c-a") is None
    assert cache.get("c-x") is not None
    assert sorted(woken) == sorted([POD.uid, other.uid])


def test_an_unchanged_relist_wakes_no_one(cache: RuntimeCache) -> None:
    woken: list[PodUID] = []
    cache.add_listener(woken.append)
    with cache.observing() as mark:
        cache.finish_relist(mark, listed=["c-a", "c-b"], records=[running("a", "c-a")])
    assert woken == []


def test_adoption_after_a_destroy_is_refused() -> None:
    cache = RuntimeCache()
    with cache.observing() as mark:
        cache.remove("c-late")  # destroyed while its inspect was in flight
        cache.put_observed(mark, running("a", "c-late"))
    assert cache.get("c-late") is None
    with cache.observing() as mark:
        cache.put_observed(mark, running("a", "c-late"))
    assert cache.get("c-late") is not None
