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


_SIMPLE_TYPES = {str: "STRING", int: "BIGINT", type(None): "VOID"}
_STRING_MAP = r"OBJECT<(?:[^:<>]+: STRING(?:, )?)*>"
# The struct every field is read into at once; types are judged from the record's shape, not from this cast.
_VALUES = (
    "struct<event_id:string, schema_version:bigint, user_id:string, session_id:string, page:string,"
    " referrer:string, user_agent:string, ts:string, properties:map<string,string>>"
)


def valid_shape_pattern() -> str:
    """A regex for ``schema_of_variant`` of a well-typed event, derived from :data:`FIELDS`.

    VARIANT lists an object's keys sorted, so a valid record has exactly this shape (with optional fields
    present or not) plus a trailing ", " added before matching. A record that matches needs no per-field
    type checks; one that does not (including valid ones with extra keys) gets them, field by field.
    """
    parts = []
    for spec in sorted(FIELDS, key=lambda f: f.name):
        alternatives = [_STRING_MAP if t is dict else _SIMPLE_TYPES[t] for t in spec.json_types]
        part = f"{spec.name}: (?:{'|'.join(alternatives)}), "
        parts.append(part if spec.required else f"(?:{part})?")
    return "^OBJECT<" + "".join(parts) + "$"


def _type_ok(variant_type: Column, json_types: tuple[type, ...]) -> Column:
    """VARIANT type names for the JSON types a field allows (ints beyond 64 bits are DECIMALs: rejected)."""
    names = {str: variant_type == "STRING", int: variant_type == "BIGINT", dict: variant_type.startswith("OBJECT<")}
    conditions = [variant_type == "VOID" if t is type(None) else names[t] for t in json_types]
    return reduce(or_, conditions)


def _field_type(name: str) -> Column:
    """One field's VARIANT type (null when absent), looked up in the parsed record."""
    return F.schema_of_variant(F.try_variant_get("_json", f"$.{name}", "variant"))


def _types(name: str) -> Column:
    """A field's type from ``_types``, which exists only for records off the fast path (null otherwise)."""
    return F.col(f"_types.{name}")


def _rejection(parsed: DataFrame) -> Column:
    """The first rule a record breaks, in the Python validator's order, as struct(reason, detail)."""

    def reject(reason: RejectReason, detail: Column | str) -> Column:
        detail_col = F.lit(detail) if isinstance(detail, str) else detail
        return F.struct(F.lit(reason.value).alias("reason"), detail_col.alias("detail"))

    off_shape = F.col("_types").isNotNull()
    version_type = _types("schema_version")
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
            off_shape & (version_type == "BIGINT") & ~F.col("schema_version").isin(*sorted(SUPPORTED_VERSIONS)),
            reject(
                RejectReason.UNKNOWN_VERSION,
                F.format_string(
                    "schema_version %d; this reader knows %s",
                    F.col("schema_version"),
                    F.lit(str(sorted(SUPPORTED_VERSIONS))),
                ),
            ),
        ),
        (
            F.col("_shape_ok") & ~F.col("schema_version").isin(*sorted(SUPPORTED_VERSIONS)),
            reject(RejectReason.UNKNOWN_VERSION, F.format_string("schema_version %d", F.col("schema_version"))),
        ),
    ]
    for spec in FIELDS:
        field_type = _types(spec.name)
        if spec.required:
            rules.append(
                (off_shape & field_type.isNull(), reject(RejectReason.MISSING_FIELD, f"{spec.name} is missing"))
            )
        rules.append(
            (
                off_shape & field_type.isNotNull() & ~_type_ok(field_type, spec.json_types),
                reject(RejectReason.WRONG_TYPE, F.concat(F.lit(f"{spec.name} is "), field_type)),
            )
        )
    # Exact shortcuts for the common case: a record shorter than the page limit cannot hold an over-long
    # field, and a JSON string can only carry control characters escaped, so without a backslash there
    # are none (raw ones make the record invalid JSON, in Spark as in Python).
    may_be_long = F.octet_length("value") > MAX_PAGE_LENGTH
    has_control_chars = F.col("value").cast("string").contains("\\")
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
    properties_type = _types("properties")
    rules.append(
        (
            off_shape & properties_type.startswith("OBJECT<") & ~properties_type.rlike(STRING_MAP_SCHEMA),
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

    Each record is parsed once; its shape (``schema_of_variant``) is matched against the valid shape, and
    all fields are read in one cast. Only records off that fast path pay for per-field lookups.
    """
    now = now_ms if now_ms is not None else F.unix_millis(F.current_timestamp())
    text = F.col("value").cast("string")
    parsed = raw.withColumn("_json", F.try_parse_json(F.when(F.is_valid_utf8(text), text)))
    shaped = parsed.select(
        "*",
        F.schema_of_variant("_json").alias("_top"),
        F.try_variant_get("_json", "$", _VALUES).alias("_f"),
        now.alias("_now_ms"),
    )
    shape_ok = F.concat(F.expr("substring(_top, 1, length(_top) - 1)"), F.lit(", ")).rlike(valid_shape_pattern())
    # On the fast path the shape says whether ts is a number or a string (keys are sorted: session_id, ts, ...).
    ts_type = F.when(
        F.col("_shape_ok"), F.when(F.col("_top").contains(", ts: BIGINT, "), "BIGINT").otherwise("STRING")
    ).otherwise(_types("ts"))
    checked = shaped.withColumn("_shape_ok", shape_ok).withColumn(
        "_types",
        F.when(~F.col("_shape_ok"), F.struct(*(_field_type(spec.name).alias(spec.name) for spec in FIELDS))),
    )
    fields = checked.select(
        "*",
        *(
            F.col(f"_f.{name}").alias(name)
            for name in ("event_id", "user_id", "session_id", "page", "referrer", "user_agent")
        ),
        F.col("_f.schema_version").cast("int").alias("schema_version"),
    )
    typed = fields.withColumn(
        "ts_ms",
        F.when(ts_type == "BIGINT", F.col("_f.ts").cast("long")).when(
            ts_type == "STRING", F.unix_millis(F.try_to_timestamp(F.col("_f.ts")))
        ),
    )
    rejected = typed.withColumn("_rejection", _rejection(typed))
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
