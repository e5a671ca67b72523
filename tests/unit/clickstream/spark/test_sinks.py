"""A micro-batch's figures from the Spark tally's summary, judged against the watermark before the batch."""

from __future__ import annotations

from clickstream.spark.batch_figures import BatchFigures

W0 = 1_750_000_020_000 - 1_750_000_020_000 % 60_000
W1, W2 = W0 + 60_000, W0 + 120_000


def window(start, views, users=b"hll"):
    return {"start_ms": start, "views": views, "users": users}


# The watermark stands at W1's start: W0's window has closed, W1 and W2 are open.
SUMMARY = {
    "records": 7,
    "newest_ms": W2 + 1,
    "invalid": {"not_json": 1, "bad_page": 1},
    "windows": [
        window(W1, {"/home": 2}, b"users-w1"),
        window(W2, {"/cart": 1}, b"users-w2"),
        window(W0, {"/home": 1, "/cart": 1}, b"users-w0"),  # late: its window closed before this batch
    ],
}


def test_open_windows_are_counted_with_their_users():
    figures = BatchFigures.of(SUMMARY, watermark_ms=W1)
    assert figures.views == {("/home", W1): 2, ("/cart", W2): 1}
    assert figures.users == {W1: b"users-w1", W2: b"users-w2"}


def test_late_events_are_left_out_but_still_move_the_watermark_on():
    figures = BatchFigures.of(SUMMARY, watermark_ms=W1)
    assert (figures.late, figures.dead, figures.records) == (2, 2, 7)
    assert figures.newest_ms == W2 + 1


def test_a_window_ending_exactly_at_the_watermark_is_closed():
    figures = BatchFigures.of(SUMMARY, watermark_ms=W1 + 60_000)
    assert figures.views == {("/cart", W2): 1}
    assert figures.late == 4


def test_an_empty_batch_has_nothing_to_add():
    figures = BatchFigures.of({"records": 0, "newest_ms": None, "invalid": {}, "windows": []}, watermark_ms=0)
    assert (figures.records, figures.newest_ms, figures.views, figures.users) == (0, None, {}, {})


def test_a_batch_counts_from_where_redis_counts_end_when_that_is_past_its_start():
    from clickstream.redis_layout import BatchOffsets
    from clickstream.spark.sinks import fenced_offsets

    start = {"events": {"0": 100, "1": 200}}
    end = {"events": {"0": 300, "1": 250, "2": 40}}  # partition 2 is new: no start in the checkpoint
    counted = {0: 150, 1: 400}
    assert fenced_offsets("k", "events", start, end, counted) == BatchOffsets(
        "k", "events", {0: (150, 300), 1: (400, 400), 2: (-1, 40)}
    )  # 0: the rest after Redis's count; 1: nothing (counted past its end); 2: all of it
