"""The Spark side of the pipeline as plain functions of DataFrames: parse, validate, window, dead-letter.

Validation is :mod:`clickstream.schema`'s rules, built as native Spark expressions from the same field
definitions and limits (no Python UDF on the hot path). Records are parsed into Spark's VARIANT type,
which keeps JSON's own types, so "a number where a string belongs" is caught exactly as the Python
validator catches it; a test runs both on one corpus and requires the same reason for every record.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from clickstream.schema import (
    FIELDS,
    MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW_MS,
    MAX_PAGE_LENGTH,
    MAX_TEXT_LENGTH,
    MIN_TS_MS,
    SUPPORTED_VERSIONS,
    RejectReason,
)

CONTROL_CHARS = r"[\x00-\x1F\x7F]"
TEXT_FIELDS = ("event_id", "user_id", "session_id", "user_agent", "referrer")
# Every value of a valid `properties` object is a string: OBJECT<k: STRING, ...> in VARIANT's words.
STRING_MAP_SCHEMA = r"^OBJECT<([^:<>]+: STRING(, )?)*>$"
EVENT_COLUMNS = ("event_id", "schema_version", "user_id", "session_id", "page", "referrer", "user_agent", "ts_ms")


def _type_ok(variant_type: Column, json_types: tuple[type, ...]) -> Column:
    """VARIANT type names for the JSON types a field allows (ints beyond 64 bits are DECIMALs: rejected)."""
    names = {str: variant_type == "STRING", int: variant_type == "BIGINT", dict: variant_type.startswith("OBJECT<")}
    conditions = [variant_type == "VOID" if t is type(None) else names[t] for t in json_types]
    return reduce(or_, conditions)


def _rejection(parsed: DataFrame) -> Column:
    """The first rule a record breaks, in the Python validator's order, as struct(reason, detail)."""

    def reject(reason: RejectReason, detail: Column | str) -> Column:
        return F.struct(
            F.lit(reason.value).alias("reason"), (F.lit(detail) if isinstance(detail, str) else detail).alias("detail")
        )

    rules: list[tuple[Column, Column]] = [
        (
            F.coalesce(F.octet_length("value"), F.lit(0)) > MAX_EVENT_BYTES,
            reject(
                RejectReason.TOO_LARGE,
                F.format_string(f"%d bytes; at most {MAX_EVENT_BYTES} allowed", F.octet_length("value")),
            ),
        ),
        (F.col("_json").isNull(), reject(RejectReason.NOT_JSON, "not a JSON document (or not UTF-8)")),
        (
            ~F.col("_top").startswith("OBJECT<"),
            reject(RejectReason.NOT_AN_OBJECT, F.concat(F.lit("top level is "), F.col("_top"))),
        ),
        (
            (F.col("_t_schema_version") == "BIGINT") & ~F.col("_v_schema_version").isin(*sorted(SUPPORTED_VERSIONS)),
            reject(
                RejectReason.UNKNOWN_VERSION,
                F.format_string(
                    "schema_version %d; this reader knows %s",
                    F.col("_v_schema_version"),
                    F.lit(str(sorted(SUPPORTED_VERSIONS))),
                ),
            ),
        ),
    ]
    for spec in FIELDS:
        present = F.col(f"_t_{spec.name}").isNotNull()
        if spec.required:
            rules.append((~present, reject(RejectReason.MISSING_FIELD, f"{spec.name} is missing")))
        rules.append(
            (
                present & ~_type_ok(F.col(f"_t_{spec.name}"), spec.json_types),
                reject(RejectReason.WRONG_TYPE, F.concat(F.lit(f"{spec.name} is "), F.col(f"_t_{spec.name}"))),
            )
        )
    rules += [
        (F.col("ts_ms").isNull(), reject(RejectReason.BAD_TIMESTAMP, "ts is not epoch milliseconds or ISO-8601")),
        (
            F.col("ts_ms") < MIN_TS_MS,
            reject(RejectReason.BAD_TIMESTAMP, "ts is before 2000-01-01 (seconds instead of ms?)"),
        ),
        (
            F.col("ts_ms") > F.col("_now_ms") + MAX_FUTURE_SKEW_MS,
            reject(
                RejectReason.FUTURE_TIMESTAMP,
                F.format_string("ts is %d s ahead of now", ((F.col("ts_ms") - F.col("_now_ms")) / 1000).cast("long")),
            ),
        ),
        (F.col("page") == "", reject(RejectReason.BAD_PAGE, "page is empty")),
        (
            F.char_length("page") > MAX_PAGE_LENGTH,
            reject(RejectReason.BAD_PAGE, f"page is longer than {MAX_PAGE_LENGTH} characters"),
        ),
        (F.col("page").rlike(CONTROL_CHARS), reject(RejectReason.BAD_PAGE, "page contains control characters")),
    ]
    for name in TEXT_FIELDS:
        rules.append(
            (
                (F.char_length(name) > MAX_TEXT_LENGTH) | F.col(name).rlike(CONTROL_CHARS),
                reject(RejectReason.WRONG_TYPE, f"{name} is too long or contains control characters"),
            )
        )
    rules.append(
        (
            F.col("_t_properties").startswith("OBJECT<") & ~F.col("_t_properties").rlike(STRING_MAP_SCHEMA),
            reject(RejectReason.WRONG_TYPE, "properties must map strings to strings"),
        )
    )
    chain = F.when(rules[0][0], rules[0][1])
    for condition, outcome in rules[1:]:
        chain = chain.when(condition, outcome)
    return chain


def parse_events(raw: DataFrame, now_ms: Column | None = None) -> DataFrame:
    """Kafka records (key, value, topic, partition, offset, ...) -> typed events plus ``reject_reason``.

    ``reject_reason`` is null for a valid event; otherwise the :class:`RejectReason` value, with
    ``reject_detail``. ``now_ms`` judges far-future timestamps: by default the (micro-)batch's time,
    which Spark records with the batch, so a replayed batch judges exactly as the first run did.
    """
    now = now_ms if now_ms is not None else F.unix_millis(F.current_timestamp())
    variant = F.try_parse_json(F.when(F.is_valid_utf8(F.col("value").cast("string")), F.col("value").cast("string")))
    with_json = raw.withColumn("_json", variant).withColumn("_top", F.schema_of_variant("_json"))
    typed = with_json.select(
        "*",
        *(
            F.schema_of_variant(F.try_variant_get("_json", f"$.{s.name}", "variant")).alias(f"_t_{s.name}")
            for s in FIELDS
        ),
        F.try_variant_get("_json", "$.schema_version", "bigint").alias("_v_schema_version"),
        now.alias("_now_ms"),
    )
    ts = F.when(F.col("_t_ts") == "BIGINT", F.try_variant_get("_json", "$.ts", "bigint")).when(
        F.col("_t_ts") == "STRING", F.unix_millis(F.try_to_timestamp(F.try_variant_get("_json", "$.ts", "string")))
    )
    fields = typed.select(
        "*",
        *(
            F.when(F.col(f"_t_{name}") == "STRING", F.try_variant_get("_json", f"$.{name}", "string")).alias(name)
            for name in ("event_id", "user_id", "session_id", "page", "referrer", "user_agent")
        ),
        F.col("_v_schema_version").cast("int").alias("schema_version"),
        ts.alias("ts_ms"),
    )
    rejected = fields.withColumn("_rejection", _rejection(fields))
    return rejected.select(
        *(c for c in raw.columns),
        *EVENT_COLUMNS,
        F.timestamp_millis("ts_ms").alias("event_time"),
        F.col("_rejection.reason").alias("reject_reason"),
        F.col("_rejection.detail").alias("reject_detail"),
    )


def valid_events(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNull())


def invalid_events(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col("reject_reason").isNotNull())


def window_counts(valid: DataFrame, watermark: str | None = "2 minutes") -> DataFrame:
    """Views per page per 1-minute tumbling event-time window: (page, window_start_ms, count).

    With a ``watermark`` (streaming), Spark keeps each window's state until the watermark passes its end,
    and drops events that arrive later than that; ``None`` (batch) counts everything.
    """
    events = valid.withWatermark("event_time", watermark) if watermark else valid
    return (
        events.groupBy(F.window("event_time", "1 minute").alias("w"), "page")
        .agg(F.count("*").alias("count"))
        .select("page", F.unix_millis("w.start").alias("window_start_ms"), "count")
    )


def window_users(valid: DataFrame) -> DataFrame:
    """Distinct (window_start_ms, user_id) pairs, for the per-window HyperLogLog in Redis."""
    start = F.unix_millis(F.window("event_time", "1 minute").start)
    return valid.select(start.alias("window_start_ms"), "user_id").distinct()


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
