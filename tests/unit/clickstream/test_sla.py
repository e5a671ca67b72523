"""The burst SLA's rules: freshness, completeness, exactness, and what the reconciler excuses."""

from __future__ import annotations

from clickstream.redis_layout import cells_from_replies as decode_cells
from clickstream.schema import window_label
from clickstream.sla import allowed_shortfall, check_burst

W0 = 1_765_000_020_000  # a window start
W1 = W0 + 60_000
TRUTH = {
    "page_totals": {"/home": 30, "/about": 5},
    "page_newest_window_ms": {"/home": W1, "/about": W0},
    "first_window_ms": W0,
    "last_window_ms": W1,
}


def cells(**by_page):
    """cells(home={W0: 10}) -> {("/home", label): 10}"""
    return {("/" + page, window_label(w)): n for page, windows in by_page.items() for w, n in windows.items()}


def check(found, now_ms=W1 + 30_000, exact=True, report=None, freshness_s=120):
    return check_burst(truth=TRUTH, cells=found, now_ms=now_ms, freshness_s=freshness_s, exact=exact, report=report)


def test_a_complete_fresh_redis_passes():
    result = check(cells(home={W0: 10, W1: 20}, about={W0: 5}))
    assert result.ok, result.problems
    assert (result.events_expected, result.events_in_redis) == (35, 35)
    assert result.newest_window == window_label(W1) and result.newest_window_age_s == 30


def test_stale_redis_names_the_window_and_its_age():
    result = check(cells(home={W0: 10, W1: 20}, about={W0: 5}), now_ms=W1 + 600_000)
    assert result.problems == [
        f"stale: the newest window in Redis, {window_label(W1)}, is 600s old (freshness SLA 120s)"
    ]


def test_a_page_that_stops_short_of_its_newest_window_is_stale_and_short():
    result = check(cells(home={W0: 10}, about={W0: 5}))
    assert f"stale page /home: newest window in Redis {window_label(W0)}, the burst reached {window_label(W1)}" in (
        result.problems
    )
    assert (
        f"wrong count for page /home: Redis holds 10 over windows ['{window_label(W0)}'], the burst sent 30 "
        "(short by 20)" in result.problems
    )


def test_over_counts_fail_only_when_exact():
    found = cells(home={W0: 11, W1: 20}, about={W0: 5})
    assert not check(found).ok
    assert "more than the 30 sent" in check(found).problems[0]
    assert check(found, exact=False).ok


def test_windows_outside_the_burst_do_not_count_towards_its_totals():
    found = cells(home={W0 - 60_000: 99, W0: 10, W1: 20}, about={W0: 5})
    assert check(found).ok


def test_the_reconciler_excuses_only_what_it_reported_missing_and_did_not_repair():
    found = cells(home={W0: 8, W1: 20}, about={W0: 5})  # 2 late events never counted
    not_repaired = {"repair_requested": False, "events_missing_from_redis": 2}
    assert check(found, report=not_repaired).ok
    assert not check(found, report={"repair_requested": False, "events_missing_from_redis": 1}).ok
    assert not check(found, report={"repair_requested": True, "events_missing_from_redis": 2}).ok
    assert allowed_shortfall(None) == 0


def test_an_empty_digest_or_an_empty_redis_says_so():
    assert check_burst(truth={}, cells={}, now_ms=0, freshness_s=1, exact=True).problems == [
        "the burst digest names no pages or windows: pass the burst task's XCom"
    ]
    assert "Redis holds no windows for any of the burst's 2 pages" in check({}).problems


def test_decode_cells_reads_hgetall_replies_in_page_order():
    assert decode_cells(["/a", "/b"], [{b"2025-01-01T00:00:00": b"3"}, {}]) == {("/a", "2025-01-01T00:00:00"): 3}


def test_the_message_lists_problems_and_caps_them():
    result = check_burst(
        truth={**TRUTH, "page_totals": {f"/p{i}": 1 for i in range(40)}, "page_newest_window_ms": {}},
        cells={},
        now_ms=W1,
        freshness_s=60,
        exact=True,
    )
    lines = result.message().splitlines()
    assert len(lines) == 26 and lines[-1] == f"- ... and {len(result.problems) - 25} more"
