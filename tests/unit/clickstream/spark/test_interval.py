"""The watermark delay, read the way Spark's ``withWatermark`` reads it, in milliseconds for the sink."""

from __future__ import annotations

import pytest

from clickstream.spark.transforms import interval_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 minutes", 120_000),
        ("1 minute", 60_000),
        ("90 seconds", 90_000),
        ("1 minute 30 seconds", 90_000),
        ("500 milliseconds", 500),
        ("1 HOUR", 3_600_000),
        ("0 seconds", 0),
    ],
)
def test_delays_spark_accepts(text, expected):
    assert interval_ms(text) == expected


@pytest.mark.parametrize("text", ["", "2", "soon", "2 fortnights", "2 minutes ago"])
def test_anything_else_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match="is not a delay like '2 minutes'"):
        interval_ms(text)
