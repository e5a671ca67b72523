"""The Spark side of the pipeline as plain functions of DataFrames: parse, validate, window, dead-letter.

Validation is :mod:`clickstream.schema`'s rules, applied in its order. A small JVM function parses each
record with a streaming JSON reader and judges its JSON and its fields' types from the schema module's
field list (a Python UDF would cost far more); the remaining rules are Spark expressions built from the
same limits. JSON's own types are kept, so "a number where a string belongs" is caught exactly as the
Python validator catches it; a test runs both on one corpus and requires the same reason for every record.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any, TypeVar

from py4j.java_gateway import JavaClass
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.schema import (
    FIELDS,
    ISO_TS_FORM,
    ISO_TS_PATTERN,
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_NESTING_DEPTH,
    MAX_PAGE_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    SUPPORTED_VERSIONS,
    TS_UNIT_RANGES,
    WINDOW_MS,
    RejectReason,
)

CONTROL_CHARS = r"[\x00-\x1F\x7F]"
TEXT_FIELDS = ("event_id", "user_id", "session_id", "user_agent", "referrer")
T = TypeVar("T")
EVENT_COLUMNS = ("event_id", "schema_version", "user_id", "session_id", "page", "referrer", "user_agent", "ts_ms")

# The JVM side of parsing and of a micro-batch's tally: include/spark/java/clickstream/spark/, built by
# `make setup` into a jar beside the Kafka connector's.
PARSER_CLASS = "clickstream.spark.ParseEvent"
PARSER_FUNCTION = "clickstream_parse_event"
_MISSING_JAR = (
    "pass the jar `make setup` builds (clickstream-spark-parser.jar, beside the Kafka connector jars) "
    "with --jars or spark.jars"
)
_JSON_TYPE_NAMES = {str: "string", int: "int", dict: "object", type(None): "null"}
# What the parser returns: the shape verdict (reason null when right), then the fields.
PARSED_TYPE = (
    "struct<reason:string, detail:string, event_id:string, schema_version:bigint, user_id:string,"
    " session_id:string, page:string, referrer:string, user_agent:string, ts_long:bigint, ts_text:string,"
    " properties_ok:boolean>"
)


def parse_spec() -> str:
    """:data:`~clickstream.schema.FIELDS` and the supported versions, in the words the JVM parser reads.

    ``versions=1;depth=32;event_id:string:required;referrer:string|null:optional;...``: the schema module
    stays the one place the event's fields, types, versions and nesting limit are written down.
    """
    fields = [
        f"{spec.name}:{'|'.join(_JSON_TYPE_NAMES[t] for t in spec.json_types)}:"
        f"{'required' if spec.required else 'optional'}"
        for spec in FIELDS
    ]
    versions = ",".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
    return ";".join([f"versions={versions}", f"depth={MAX_NESTING_DEPTH}", *fields])


def register_parser(spark: SparkSession) -> None:
    """Make the JVM parser callable as :data:`PARSER_FUNCTION`; says how to fix a missing jar."""
    try:
        spark.udf.registerJavaFunction(PARSER_FUNCTION, PARSER_CLASS, PARSED_TYPE)
    except Exception as exc:  # Py4J or Spark Connect: the class is not on the driver's classpath
        if "ClassNotFound" not in str(exc) and "CANNOT_LOAD_FUNCTION_CLASS" not in str(exc):
            raise
        raise RuntimeError(f"the Spark session cannot load {PARSER_CLASS}: {_MISSING_JAR}") from exc


def _rejection() -> Column:
    """The first rule a record breaks, in the Python validator's order, as struct(reason, detail).

    The JVM parser has judged the record's JSON and its fields' types already (``_p.reason``); the rules
    that follow use the fields it read.
    """

    def reject(reason: RejectReason, detail: Column | str) -> Column:
        detail_col = F.lit(detail) if isinstance(detail, str) else detail
        return F.struct(F.lit(reason.value).alias("reason"), detail_col.alias("detail"))

    # Exact shortcuts for the common case: a record shorter than the page limit cannot hold an over-long
    # field, and a JSON string can only carry control characters (or lone surrogates) escaped, DEL aside,
    # so without a backslash or a DEL there are none (raw ones make the record invalid JSON, in the JVM
    # parser as in Python).
    may_be_long = F.octet_length("value") > MAX_PAGE_LENGTH
    raw_text = F.col("value").cast("string")
    has_control_chars = raw_text.contains("\\") | raw_text.contains("\x7f")
    rules: list[tuple[Column, Column]] = [
        (
            F.coalesce(F.octet_length("value"), F.lit(0)) > MAX_EVENT_BYTES,
            reject(
                RejectReason.TOO_LARGE,
                F.format_string(f"%d bytes; at most {MAX_EVENT_BYTES} allowed", F.octet_length("value")),
            ),
        ),
        (
            F.col("_p.reason").isNotNull(),
            F.struct(F.col("_p.reason").alias("reason"), F.col("_p.detail").alias("detail")),
        ),
        (
            F.col("ts_ms").isNull(),
            reject(
                RejectReason.BAD_TIMESTAMP,
                F.format_string(
                    f"ts '%s' is not {ISO_TS_FORM}",
                    F.substring(F.col("_p.ts_text"), 1, 64),
                ),
            ),
        ),
        (
            (F.col("ts_ms") < MIN_TS_MS) | (F.col("ts_ms") >= MAX_TS_MS),
            reject(RejectReason.BAD_TIMESTAMP, ts_range_problem(F.col("ts_ms"))),
        ),
        (
            F.col("ts_ms") > F.col("_now_ms") + MAX_FUTURE_SKEW_MS,
            reject(
                RejectReason.FUTURE_TIMESTAMP,
                F.format_string(
                    "ts is %d s ahead of the record's Kafka time",
                    ((F.col("ts_ms") - F.col("_now_ms")) / 1000).cast("long"),
                ),
            ),
        ),
        (F.col("page") == "", reject(RejectReason.BAD_PAGE, "page is empty")),
        (
            may_be_long & (F.char_length("page") > MAX_PAGE_LENGTH),
            reject(RejectReason.BAD_PAGE, f"page is longer than {MAX_PAGE_LENGTH} characters"),
        ),
        (
            has_control_chars & F.col("page").rlike(CONTROL_CHARS),
            reject(RejectReason.BAD_PAGE, "page contains control characters"),
        ),
    ]
    for name in TEXT_FIELDS:
        rules.append(
            (
                (may_be_long & (F.char_length(name) > MAX_TEXT_LENGTH))
                | (has_control_chars & F.col(name).rlike(CONTROL_CHARS)),
                reject(RejectReason.WRONG_TYPE, f"{name} is too long or contains control characters"),
            )
        )
    rules.append(
        (~F.col("_p.properties_ok"), reject(RejectReason.WRONG_TYPE, "properties must map strings to strings"))
    )
    # The common case, a well-formed record within every limit, is settled by one condition; only the
    # rest walk the rules in order.
    clean = (
        F.col("_p.reason").isNull()
        & (F.col("ts_ms") >= MIN_TS_MS)
        & (F.col("ts_ms") < MAX_TS_MS)
        & (F.col("ts_ms") <= F.col("_now_ms") + MAX_FUTURE_SKEW_MS)
        & (F.col("page") != "")
        & ~may_be_long
        & ~has_control_chars
        & F.col("_p.properties_ok")
    )
    chain = F.when(clean, F.lit(None))
    for condition, outcome in rules:
        chain = chain.when(condition, outcome)
    return chain


def ts_range_problem(ts_ms: Column) -> Column:
    """:func:`clickstream.schema.ts_range_problem` as a Spark expression: comparisons only, nothing to overflow."""
    detail = F.when((ts_ms >= MIN_TS_MS) & (ts_ms < MAX_TS_MS), F.lit(None))
    for unit, first, end in TS_UNIT_RANGES:
        detail = detail.when(
            (ts_ms >= first) & (ts_ms < end),
            F.format_string(f"ts %d looks like epoch {unit}; expected epoch milliseconds", ts_ms),
        )
    return detail.when(ts_ms < MIN_TS_MS, F.format_string("ts %d is before 2000-01-01", ts_ms)).otherwise(
        F.format_string("ts %d is after 2100-01-01", ts_ms)
    )


def parse_events(raw: DataFrame, now_ms: Column | None = None) -> DataFrame:
    """Kafka records (key, value, topic, partition, offset, ...) -> typed events plus ``reject_reason``.

    ``reject_reason`` is null for a valid event; otherwise the :class:`RejectReason` value, with
    ``reject_detail``. ``now_ms`` judges far-future timestamps: by default each Kafka record's own
    timestamp (when it was produced), so the streaming job, a replayed batch and a later recount all judge
    a record alike. (The batch's clock would also replay exactly, but as a new literal in every
    micro-batch it makes Spark compile the generated code again each time: ~0.25 s a batch here.)

    Each record is parsed once, on the JVM, by a streaming JSON reader that also judges its shape against
    the schema module's fields (:func:`parse_spec`); ~5 times the rate of Spark's own JSON functions
    with the checks as expressions.
    """
    register_parser(raw.sparkSession)
    if now_ms is not None:
        now = now_ms
    elif "timestamp" in raw.columns:
        now = F.unix_millis(F.col("timestamp"))
    else:
        now = F.unix_millis(F.current_timestamp())
    columns = _parse_columns(raw.sparkSession)
    return (
        raw.select("*", columns.parsed, now.alias("_now_ms"))
        .select("*", *columns.fields)
        .select("*", columns.rejection)
        .select(*raw.columns, *columns.result)
    )


@dataclass(frozen=True)
class _ParseColumns:
    """The expressions :func:`parse_events` applies, built once per JVM.

    A streaming sink parses every micro-batch anew; building them (~2,600 Py4J calls) took
    ~0.3 s a batch, most of a 1-second trigger's latency. Unresolved columns can be reused on any DataFrame.
    """

    parsed: Column
    fields: tuple[Column, ...]
    rejection: Column
    result: tuple[Column | str, ...]


_COLUMNS: dict[tuple[int, str], Any] = {}


def _per_jvm(spark: SparkSession, name: str, build: Callable[[], T]) -> T:
    """``build()``'s columns, built once per JVM (unresolved columns can be reused on any DataFrame)."""
    jvm = getattr(spark, "_jvm", None)  # None on Spark Connect, whose columns are plain Python objects
    key = (id(jvm), name)
    if key not in _COLUMNS:
        _COLUMNS[key] = build()
    return _COLUMNS[key]


def _parse_columns(spark: SparkSession) -> _ParseColumns:
    return _per_jvm(spark, "parse", _build_parse_columns)


def _build_parse_columns() -> _ParseColumns:
    small_enough = F.coalesce(F.octet_length("value"), F.lit(0)) <= MAX_EVENT_BYTES
    fields = (
        *(
            F.col(f"_p.{name}").alias(name)
            for name in ("event_id", "user_id", "session_id", "page", "referrer", "user_agent")
        ),
        F.col("_p.schema_version").cast("int").alias("schema_version"),
        F.coalesce(
            F.col("_p.ts_long"),
            # Only text of the one ISO-8601 form the Python validator reads too (Spark's own is laxer).
            F.when(
                F.col("_p.ts_text").rlike(f"^(?:{ISO_TS_PATTERN})\\z"),
                F.unix_millis(F.try_to_timestamp(F.col("_p.ts_text"))),
            ),
        ).alias("ts_ms"),
    )
    return _ParseColumns(
        parsed=F.call_function(PARSER_FUNCTION, F.when(small_enough, F.col("value")), F.lit(parse_spec())).alias("_p"),
        fields=fields,
        rejection=_rejection().alias("_rejection"),
        result=(
            *EVENT_COLUMNS,
            # Validate first, compute after: under ANSI mode a ts of 10^16 overflows timestamp_millis and
            # fails the whole batch, so only a valid record's ts becomes a timestamp.
            F.when(F.col("_rejection").isNull(), F.timestamp_millis("ts_ms")).alias("event_time"),
            F.col("_rejection.reason").alias("reject_reason"),
            F.col("_rejection.detail").alias("reject_detail"),
        ),
    )


def invalid_events(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull())


def compact(parsed: DataFrame) -> DataFrame:
    """Only what a micro-batch's sink reads, so caching a batch stays small.

    A valid record keeps its page, window start, time and user; an invalid one its reason, the window it
    reached Kafka in (:func:`arrival_window`) and what its dead letter carries (original key and bytes,
    source topic, partition and offset).
    """
    if "timestamp" in parsed.columns:
        columns = _per_jvm(parsed.sparkSession, "compact", lambda: _compact_columns(arrival_window()))
    else:  # records that did not come from Kafka: invalid ones have no window
        columns = _per_jvm(parsed.sparkSession, "compact_without_arrival", lambda: _compact_columns(F.lit(None)))
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
        raise RuntimeError(f"the Spark session cannot load {TALLY_CLASS}: {_MISSING_JAR}")
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
