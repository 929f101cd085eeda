"""The cluster benchmark's matching of node changes to server deliveries: a wrong
match would report delays the agent does not have."""

from __future__ import annotations

import pytest

from bench.cluster import match_delays, quantile


def test_each_delivery_is_timed_from_the_change_it_delivers() -> None:
    node = {"p": [(1.0, True), (2.0, False), (3.0, True)]}
    server = {"p": [(1.1, True), (2.3, False), (3.05, True)]}
    delays, changes, superseded = match_delays(node, server, 0.0, 10.0)
    assert delays == pytest.approx([0.1, 0.3, 0.05])
    assert (changes, superseded) == (3, 0)


def test_a_change_superseded_before_delivery_is_counted_not_timed() -> None:
    # The node flipped to False and back before the server got False: the server
    # holds True from the third change, 0.2 s after it.
    node = {"p": [(1.0, True), (2.0, False), (2.1, True)]}
    server = {"p": [(1.1, True), (2.3, True)]}
    delays, changes, superseded = match_delays(node, server, 0.0, 10.0)
    assert delays == pytest.approx([0.1, 0.2])
    assert (changes, superseded) == (3, 1)


def test_a_late_delivery_of_an_older_value_matches_that_value() -> None:
    # False reaches the server after the node is back at True (a slow request):
    # it is the delivery of the change at 2.0, 1.5 s late.
    node = {"p": [(1.0, True), (2.0, False), (3.0, True)]}
    server = {"p": [(1.1, True), (3.5, False), (3.6, True)]}
    delays, _, superseded = match_delays(node, server, 0.0, 10.0)
    assert delays == pytest.approx([0.1, 1.5, 0.6])
    assert superseded == 0


def test_only_changes_inside_the_window_count() -> None:
    node = {"p": [(1.0, True), (5.0, False), (9.0, True)]}
    server = {"p": [(1.1, True), (5.2, False), (9.1, True)]}
    delays, changes, _ = match_delays(node, server, 4.0, 6.0)
    assert delays == pytest.approx([0.2])
    assert changes == 1


def test_quantile() -> None:
    assert quantile([], 0.5) == 0.0
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert quantile([float(i) for i in range(100)], 0.99) == 99.0
