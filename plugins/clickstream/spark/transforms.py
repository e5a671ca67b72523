"""The Spark side of the pipeline after parsing, as plain functions of DataFrames: window, compact, tally,
dead-letter. Parsing and validation are :mod:`clickstream.spark.parse`'s.
"""

from __future__ import annotations

import base64
import json
import re
from functools import reduce
from typing import Any

from py4j.java_gateway import JavaClass
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from clickstream.schema import WINDOW_MS
from clickstream.spark.parse import MISSING_JAR, per_jvm


def compact(parsed: DataFrame) -> DataFrame:
    """Only what a micro-batch's sink reads, so caching a batch stays small.

    A valid record keeps its page, window start, time and user; an invalid one its reason, the window it
    reached Kafka in (:func:`arrival_window`) and what its dead letter carries (original key and bytes,
    source topic, partition and offset).
    """
    if "timestamp" in parsed.columns:
        columns = per_jvm(parsed.sparkSession, "compact", lambda: _compact_columns(arrival_window()))
    else:  # records that did not come from Kafka: invalid ones have no window
        columns = per_jvm(parsed.sparkSession, "compact_without_arrival", lambda: _compact_columns(F.lit(None)))
    return parsed.select("reject_reason", *columns)


LATEST_LABELLED_MS = 253_402_300_800_000 - WINDOW_MS  # the last window with a 4-digit year (9999-12-31T23:59)


def arrival_window() -> Column:
    """The 1-minute window a record reached Kafka in (its Kafka timestamp), null outside years 1970-9999.

    An invalid record may have no event time of its own: its dead letter is counted in this window.
    No arithmetic can overflow: ``unix_millis`` divides, and the range is checked before subtracting.
    """
    arrival = F.unix_millis(F.col("timestamp"))
    in_range = arrival.between(F.lit(0), F.lit(LATEST_LABELLED_MS))
    return F.when(in_range, arrival - F.pmod(arrival, F.lit(WINDOW_MS)))


def _compact_columns(invalid_window: Column) -> tuple[Column, ...]:
    valid = F.col("reject_reason").isNull()
    dead = ("key", "value", "reject_detail", "topic", "partition", "offset")
    return (
        F.when(valid, F.col("page")).alias("page"),
        F.when(valid, window_start()).otherwise(invalid_window).alias("window_start_ms"),
        *(F.when(valid, F.col(name)).alias(name) for name in ("ts_ms", "user_id")),
        *(F.when(~valid, F.col(name)).alias(name) for name in dead),
    )


def valid_event_time() -> Column:
    """A valid record's event time, null for an invalid one: the column a watermark may follow."""
    return F.when(F.col("reject_reason").isNull(), F.col("event_time"))


_INTERVAL_UNITS_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_INTERVAL_PART = re.compile(r"(\d+)\s*(millisecond|second|minute|hour|day)s?", re.IGNORECASE)


def interval_ms(text: str) -> int:
    """Milliseconds in a delay as Spark's ``withWatermark`` takes it: "2 minutes", "1 minute 30 seconds"."""
    parts = _INTERVAL_PART.findall(text)
    if not parts or _INTERVAL_PART.sub("", text).strip():
        raise ValueError(f"{text!r} is not a delay like '2 minutes' or '90 seconds'")
    return sum(int(n) * _INTERVAL_UNITS_MS[unit.lower()] for n, unit in parts)


def window_start() -> Column:
    """The epoch-ms start of the 1-minute tumbling window of ``ts_ms`` (null when it is null).

    Plain arithmetic rather than ``window()``: Spark drops every row whose time is null wherever
    ``window()`` appears, and invalid records must survive to be counted and dead-lettered.
    """
    return F.col("ts_ms") - F.pmod(F.col("ts_ms"), F.lit(WINDOW_MS))


def tally(parsed: DataFrame) -> DataFrame:
    """Everything a recount needs from one pass over parsed records, with nothing cached between passes.

    One row per (partition, reject_reason, page, window_start_ms): ``count`` and the partition's
    ``first_offset``/``last_offset`` among those records. Valid records have a null ``reject_reason``;
    invalid ones a null page and window.
    """
    valid = F.col("reject_reason").isNull()
    return parsed.groupBy(
        "partition",
        "reject_reason",
        F.when(valid, F.col("page")).alias("page"),
        F.when(valid, window_start()).alias("window_start_ms"),
    ).agg(F.count("*").alias("count"), F.min("offset").alias("first_offset"), F.max("offset").alias("last_offset"))


TALLY_CLASS = "clickstream.spark.BatchTally"
TALLY_INPUT = ("reject_reason", "page", "window_start_ms", "ts_ms", "user_id")


def batch_summary(records: DataFrame) -> dict[str, Any]:
    """A micro-batch's figures from :func:`compact` records, in one Spark job with no shuffle.

    The JVM half (``BatchTally.java``, in the parser's jar) tallies each partition where it is read and
    the driver merges the partials: ``records``, ``newest_ms`` (newest valid event time, None without
    one), ``invalid`` ({reason: count}) and ``windows``, each ``{"start_ms", "views": {page: count},
    "users"}`` where ``users`` is the window's users as a Redis HyperLogLog in its dense encoding,
    registers filled exactly as PFADD fills them, so PFMERGE gives the key adding the ids would.
    """
    tally_class = reduce(getattr, TALLY_CLASS.split("."), records.sparkSession.sparkContext._jvm)
    if not isinstance(tally_class, JavaClass):  # py4j hands back a package for a class it cannot load
        raise RuntimeError(f"the Spark session cannot load {TALLY_CLASS}: {MISSING_JAR}")
    tally = tally_class.of(records.select(*TALLY_INPUT)._jdf)
    summary: dict[str, Any] = json.loads(tally.summaryJson())
    for window in summary["windows"]:
        window["users"] = base64.b64decode(window["users"])
    return summary


def dead_letters(invalid: DataFrame) -> DataFrame:
    """Invalid records for the dead-letter topic: original key and bytes, the reason and origin in headers."""
    header = lambda name, col: F.struct(F.lit(name).alias("key"), col.cast("binary").alias("value"))  # noqa: E731
    return invalid.select(
        "key",
        F.coalesce(F.col("value"), F.lit(b"").cast("binary")).alias("value"),
        F.array(
            header("reject_reason", F.col("reject_reason")),
            header("reject_detail", F.col("reject_detail")),
            header("source_topic", F.col("topic")),
            header("source_partition", F.col("partition").cast("string")),
            header("source_offset", F.col("offset").cast("string")),
        ).alias("headers"),
    )
