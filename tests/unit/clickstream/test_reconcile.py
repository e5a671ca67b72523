from __future__ import annotations

from clickstream.reconcile import reconcile
from clickstream.schema import window_label

W1, W2 = 1_750_000_020_000 - 20_000, 1_750_000_080_000 - 20_000


def test_matching_short_missing_and_over_cells_are_told_apart():
    recount = {("/a", W1): 10, ("/b", W1): 5, ("/c", W2): 7, ("/d", W2): 3}
    stored = {("/a", window_label(W1)): 10, ("/b", window_label(W1)): 4, ("/d", window_label(W2)): 9}
    comparison, repairs = reconcile(recount, stored)
    assert comparison["cells_compared"] == 4
    assert comparison["cells_matching"] == 1
    assert comparison["cells_short_in_redis"] == 1
    assert comparison["cells_missing_in_redis"] == 1
    assert comparison["cells_over_in_redis"] == 1
    assert comparison["events_missing_from_redis"] == 1 + 7
    # Only cells where Redis holds less are repaired; a window reaching outside the range is never lowered.
    assert repairs == [("/b", W1, 5), ("/c", W2, 7)]
    kinds = {(d["page"], d["kind"]) for d in comparison["differences"]}
    assert kinds == {("/b", "short"), ("/c", "missing"), ("/d", "over")}


def test_everything_matching_needs_no_repair():
    recount = {("/a", W1): 2}
    comparison, repairs = reconcile(recount, {("/a", window_label(W1)): 2})
    assert (comparison["cells_matching"], comparison["differences"], repairs) == (1, [], [])
