"""Property-based: the Python validator and the Spark parse give every hostile record one verdict.

Hypothesis generates the records (tests/hostile.py); each goes through the Python validator as it is drawn,
and then all of them go through the Spark parse and the micro-batch tally in one Spark job. Every record
must get the same verdict and reason from both, nothing may throw, and counted + dead-lettered = input.
A disagreement Hypothesis finds becomes a fixed case in ``corpus.HOSTILE``.

``CLICKSTREAM_HYPOTHESIS_EXAMPLES`` sets how many records (20,000 by default) and
``CLICKSTREAM_HYPOTHESIS_SEED`` draws a different sample than CI's fixed one.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import hostile
import pytest
from hypothesis import HealthCheck, given, seed, settings
from pyspark.sql import functions as F

from clickstream.schema import InvalidEvent, Validator
from clickstream.spark.parse import parse_events
from clickstream.spark.transforms import batch_summary, compact

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("CLICKSTREAM_HYPOTHESIS_EXAMPLES", "20000"))
SEED = int(os.environ.get("CLICKSTREAM_HYPOTHESIS_SEED", "20261201"))


def python_reason(validator: Validator, raw: bytes) -> str | None:
    try:
        validator.validate(raw, now_ms=hostile.NOW)
    except InvalidEvent as exc:
        assert exc.detail, raw[:120]
        return exc.reason.value
    return None


def test_every_hostile_record_gets_one_verdict_from_python_and_from_spark(spark):
    validator = Validator()
    drawn: list[tuple[bytes, str | None]] = []

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile.records())
    def through_python(raw: bytes) -> None:
        drawn.append((raw, python_reason(validator, raw)))  # any other exception fails, shrunk

    started = time.monotonic()
    through_python()
    python_s = time.monotonic() - started
    assert len(drawn) >= EXAMPLES

    rows = [(b"k", raw, "events", 0, offset) for offset, (raw, _) in enumerate(drawn)]
    raw_df = spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")
    parsed = parse_events(raw_df, now_ms=F.lit(hostile.NOW)).cache()
    try:
        verdicts = {r.offset: (r.reject_reason, r.reject_detail) for r in parsed.select(
            "offset", "reject_reason", "reject_detail").collect()}  # fmt: skip
        summary = batch_summary(compact(parsed))
    finally:
        parsed.unpersist()
    spark_s = time.monotonic() - started - python_s

    disagreements = [
        (raw[:160], python, verdicts[offset])
        for offset, (raw, python) in enumerate(drawn)
        if verdicts[offset][0] != python
    ]
    reasons = Counter(python or "valid" for _, python in drawn)
    print(f"\n{len(drawn)} records, python {python_s:.0f} s, spark {spark_s:.0f} s; verdicts: {dict(reasons)}")
    assert sorted(disagreements, key=lambda d: len(d[0]))[:20] == []
    assert all(detail for reason, detail in verdicts.values() if reason is not None)

    counted = sum(n for window in summary["windows"] for n in window["views"].values())
    dead = sum(summary["invalid"].values())
    assert summary["records"] == len(drawn) == counted + dead
    assert counted == reasons["valid"]
    assert summary["invalid"] == {reason: n for reason, n in reasons.items() if reason != "valid"}
    assert len(reasons) >= 9, "the sample should reach most verdicts"
