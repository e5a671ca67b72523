"""Event latencies in the streaming benchmark: an event never seen is a miss, a negative latency stops the run."""

from __future__ import annotations

import math

import pytest

from bench.streaming import event_latencies


def test_each_event_waits_for_the_first_poll_whose_window_total_includes_it():
    ranks = [(0, 1, 0), (0, 2, 0), (60_000, 1, 0)]  # (window, the event's rank in it, -)
    sent = [100.0, 150.0, 120.0]
    reached = {0: [(300.0, 1), (500.0, 2)], 60_000: [(400.0, 1)]}
    assert event_latencies(ranks, sent, reached) == [200.0, 280.0, 350.0]


def test_an_event_no_poll_saw_is_an_infinite_latency_not_left_out():
    got = event_latencies([(0, 1, 0), (0, 2, 0)], [100.0, 100.0], {0: [(300.0, 1)]})
    assert got == [200.0, math.inf]


def test_a_total_stamped_before_the_event_was_sent_stops_the_benchmark():
    with pytest.raises(RuntimeError, match=r"negative latency -50\.0 ms for event 1 of window 0"):
        event_latencies([(0, 1, 0)], [350.0], {0: [(300.0, 1)]})
