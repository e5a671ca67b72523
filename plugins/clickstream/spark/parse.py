"""Parsing and validating Kafka records on Spark: bytes in, typed events and a reject reason out.

Validation is :mod:`clickstream.schema`'s rules, applied in its order. A small JVM function parses each
record with a streaming JSON reader and judges its JSON and its fields' types from the schema module's
field list (a Python UDF would cost far more); the remaining rules are Spark expressions built from the
same limits. JSON's own types are kept, so "a number where a string belongs" is caught exactly as the
Python validator catches it; a test runs both on one corpus and requires the same reason for every record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
MISSING_JAR = (
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
        raise RuntimeError(f"the Spark session cannot load {PARSER_CLASS}: {MISSING_JAR}") from exc


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


def per_jvm(spark: SparkSession, name: str, build: Callable[[], T]) -> T:
    """``build()``'s columns, built once per JVM (unresolved columns can be reused on any DataFrame)."""
    jvm = getattr(spark, "_jvm", None)  # None on Spark Connect, whose columns are plain Python objects
    key = (id(jvm), name)
    if key not in _COLUMNS:
        _COLUMNS[key] = build()
    return _COLUMNS[key]


def _parse_columns(spark: SparkSession) -> _ParseColumns:
    return per_jvm(spark, "parse", _build_parse_columns)


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
