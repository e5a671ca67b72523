"""Bisection of a failing micro-batch down to the records that fail it (pure logic, no Spark)."""

from __future__ import annotations

import pytest

from clickstream.spark.isolation import FailingRecord, OffsetRange, TooManyFailures, find_failing_records, short_error


def failing_on(*bad: int, flaky: frozenset[int] = frozenset()):
    """A job that fails on any range holding one of ``bad``; ``flaky`` offsets fail only once when alone."""
    calls: list[OffsetRange] = []
    failed_alone: set[int] = set()

    def job_error(r: OffsetRange) -> str | None:
        calls.append(r)
        hit = [o for o in bad if r.first <= o <= r.last]
        for o in flaky:
            if r.first <= o <= r.last and o not in failed_alone:
                hit.append(o)
                if r.size == 1:
                    failed_alone.add(o)
        return f"boom at {min(hit)}" if hit else None

    return job_error, calls


def test_one_poison_record_among_a_million_is_found_in_about_two_jobs_per_halving():
    job_error, calls = failing_on(654_321)
    found = find_failing_records([OffsetRange("events", 0, 0, 999_999)], job_error)
    assert found == [FailingRecord("events", 0, 654_321, "boom at 654321")]
    assert len(calls) <= 2 * 20 + 2


def test_several_records_across_partitions_are_all_found_in_order():
    job_error, _ = failing_on(3, 17, 18)
    ranges = [OffsetRange("events", 0, 0, 10), OffsetRange("events", 1, 11, 40)]
    assert [(f.partition, f.offset) for f in find_failing_records(ranges, job_error)] == [(0, 3), (1, 17), (1, 18)]


def test_a_record_that_fails_once_then_succeeds_alone_is_not_dead_lettered():
    job_error, _ = failing_on(flaky=frozenset({5}))
    assert find_failing_records([OffsetRange("events", 0, 0, 9)], job_error) == []


def test_an_outage_that_fails_every_record_stops_the_isolation():
    with pytest.raises(TooManyFailures, match="more than 4 records fail on their own"):
        find_failing_records([OffsetRange("events", 0, 0, 99)], lambda r: "Kafka timed out", limit=4)


def test_empty_and_passing_batches_find_nothing():
    assert find_failing_records([], lambda r: "never called") == []
    assert find_failing_records([OffsetRange("events", 0, 0, 9)], lambda r: None) == []


def test_the_short_error_is_the_line_that_names_the_exception():
    exc = RuntimeError(
        "An error occurred while calling o1.summaryJson.\n: org.apache.spark.SparkException: Job "
        "aborted\n  at x.y(Z.java:1)\nCaused by: java.lang.ArithmeticException: long overflow"
    )
    assert short_error(exc) == "java.lang.ArithmeticException: long overflow"
    udf = RuntimeError(
        "An exception was thrown from the Python worker.\nTraceback (most recent call last):\n"
        '  File "t.py", line 3, in boom\nValueError: poison record'
    )
    assert short_error(udf) == "ValueError: poison record"
    assert short_error(RuntimeError("")) == "RuntimeError"
