"""A micro-batch's figures, judged against the watermark, alike from Spark's aggregate or from the records."""

from __future__ import annotations

from types import SimpleNamespace

from clickstream.spark.sinks import BatchFigures

W0 = 1_750_000_020_000 - 1_750_000_020_000 % 60_000
W1, W2 = W0 + 60_000, W0 + 120_000


def record(page=None, window=None, ts=None, user=None, reason=None):
    return SimpleNamespace(reject_reason=reason, page=page, window_start_ms=window, ts_ms=ts, user_id=user)


def tally(reason=None, page=None, window=None, user=None, n=1, newest=None):
    return (reason, page, window, user, n, newest)  # in TALLY_COLUMNS order


# The watermark stands at W1's start: W0's window has closed, W1 and W2 are open.
RECORDS = [
    record("/home", W1, W1 + 5, "u1"),
    record("/home", W1, W1 + 9, "u2"),
    record("/cart", W2, W2 + 1, "u1"),
    record("/home", W0, W0 + 7, "u3"),  # late: its window closed before this batch
    record(reason="not_json"),
    record(reason="bad_page"),
]
TALLIES = [
    tally(page="/home", window=W1, n=2, newest=W1 + 9),
    tally(page="/cart", window=W2, n=1, newest=W2 + 1),
    tally(page="/home", window=W0, n=1, newest=W0 + 7),
    tally(reason="not_json", n=1),
    tally(reason="bad_page", n=1),
    tally(window=W1, user="u1"),
    tally(window=W1, user="u2"),
    tally(window=W2, user="u1"),
    tally(window=W0, user="u3"),
    tally(),  # the users grouping of the invalid records: no window, no user
]


def from_records(rows):
    figures = BatchFigures(watermark_ms=W1)
    for row in rows:
        figures.add_record(row)
    return figures


def test_records_and_spark_tallies_give_the_same_figures():
    from_tallies = BatchFigures(watermark_ms=W1)
    for values in TALLIES:
        from_tallies.add_tally(*values)
    assert from_records(RECORDS) == from_tallies


def test_late_events_are_left_out_but_still_move_the_watermark_on():
    figures = from_records(RECORDS)
    assert dict(figures.views) == {("/home", W1): 2, ("/cart", W2): 1}
    assert dict(figures.users) == {W1: {"u1", "u2"}, W2: {"u1"}}
    assert (figures.late, figures.dead, figures.records) == (1, 2, 6)
    assert figures.newest_ms == W2 + 1


def test_an_empty_batch_has_nothing_to_add():
    figures = BatchFigures(watermark_ms=0)
    assert (figures.records, figures.newest_ms, dict(figures.views)) == (0, None, {})
