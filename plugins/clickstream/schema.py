"""The page-view event: fields, types, versions and validation, in one place.

The producer, the synthetic traffic, the Spark jobs and every validator import this module, so a
field added here reaches all of them. Events travel as UTF-8 JSON objects; ``ts`` is the event
time in epoch milliseconds (ISO-8601 strings are accepted on input and normalised).
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

TOPIC = "clickstream-events"
DEAD_LETTER_TOPIC = "clickstream-events-dlq"

MAX_EVENT_BYTES = 4096
MAX_PAGE_LENGTH = 512
MAX_TEXT_LENGTH = 1024
# Clocks drift; an event more than this far ahead of the receiver's clock is a bug upstream.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
# Before 2000-01-01: a seconds-instead-of-milliseconds mistake, not a real page view.
MIN_TS_MS = 946_684_800_000
# From 2100-01-01 on: microseconds or nanoseconds sent as milliseconds (and beyond what Spark's timestamps
# can hold once multiplied). Nothing computes with a ts before it is known to lie in [MIN_TS_MS, MAX_TS_MS).
MAX_TS_MS = 4_102_444_800_000
# Containers nested deeper than this are not an event (and would exhaust a recursive parser's stack).
MAX_NESTING_DEPTH = 32
# The ISO-8601 form ``ts`` may take on the wire, which every validator reads alike: date, "T", time with up
# to microseconds, and "Z" or an offset within what java.time accepts (+-18:00). Digits are ASCII only.
ISO_TS_PATTERN = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:(?:0[0-9]|1[0-7]):[0-5][0-9]|18:00))?"
)
_ISO_TS = re.compile(ISO_TS_PATTERN)
ISO_TS_FORM = "ISO-8601 (YYYY-MM-DDThh:mm:ss[.ffffff][Z|+hh:mm])"


@dataclass(frozen=True)
class FieldSpec:
    """One field of the event: its JSON types, whether it is required, and its Spark SQL type."""

    name: str
    json_types: tuple[type, ...]
    required: bool
    spark_type: str
    doc: str


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("event_id", (str,), True, "string", "UUID of this page view; deduplication key"),
    FieldSpec("schema_version", (int,), True, "int", "version of this schema the producer wrote"),
    FieldSpec("user_id", (str,), True, "string", "pseudonymous user id; the Kafka record key"),
    FieldSpec("session_id", (str,), True, "string", "the user's session"),
    FieldSpec("page", (str,), True, "string", "path of the page viewed, e.g. /home"),
    FieldSpec("referrer", (str, type(None)), False, "string", "previous page or external referrer; null if direct"),
    FieldSpec("user_agent", (str,), True, "string", "browser or bot user agent"),
    FieldSpec("ts", (int, str), True, "long", "event time, epoch milliseconds (ISO-8601 accepted on input)"),
    FieldSpec("properties", (dict, type(None)), False, "map<string,string>", "optional string attributes"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
REQUIRED_FIELDS = tuple(f.name for f in FIELDS if f.required)


class RejectReason(StrEnum):
    """Why a record cannot be counted; carried to the dead-letter topic with the record."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_PAGE = "bad_page"
    TOO_LARGE = "too_large"
    UNKNOWN_VERSION = "unknown_schema_version"
    # A record that passed validation yet made the job fail where it was processed: isolated from its
    # micro-batch and dead-lettered so that the rest of the batch counts.
    PROCESSING_ERROR = "processing_error"


class InvalidEvent(ValueError):
    """A record failed validation; ``reason`` says which rule and ``detail`` what exactly."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PageView:
    """A valid, normalised page view."""

    event_id: str
    user_id: str
    session_id: str
    page: str
    user_agent: str
    ts: int
    referrer: str | None = None
    properties: dict[str, str] | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def window_start_ms(self) -> int:
        return window_start_ms(self.ts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "schema_version": self.schema_version,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "page": self.page,
            "referrer": self.referrer,
            "user_agent": self.user_agent,
            "ts": self.ts,
        }
        if self.properties:
            out["properties"] = self.properties
        return out

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()


WINDOW_MS = 60_000


def window_start_ms(ts_ms: int) -> int:
    """Start of the 1-minute tumbling event-time window holding ``ts_ms``."""
    return ts_ms - ts_ms % WINDOW_MS


def window_label(start_ms: int) -> str:
    """The Redis hash field of a window, in the public layout: ``2025-06-10T05:04:00`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ms // 1000))


def label_start_ms(label: str) -> int:
    """The inverse of :func:`window_label`."""
    return calendar.timegm(time.strptime(label, "%Y-%m-%dT%H:%M:%S")) * 1000


# Where a ts that is not epoch milliseconds lands when it is epoch seconds, microseconds or nanoseconds:
# (unit, first, end) with first <= ts < end, the valid range scaled. Integers, so Spark judges them exactly.
TS_UNIT_RANGES: tuple[tuple[str, int, int], ...] = (
    ("seconds", MIN_TS_MS // 1000, MAX_TS_MS // 1000),
    ("microseconds", MIN_TS_MS * 1000, MAX_TS_MS * 1000),
    ("nanoseconds", MIN_TS_MS * 1_000_000, MAX_TS_MS * 1_000_000),
)


def ts_range_problem(ts: int) -> str | None:
    """Why an epoch-ms ``ts`` cannot be an event time, naming the unit it seems to be in; None when it can."""
    if MIN_TS_MS <= ts < MAX_TS_MS:
        return None
    for unit, first, end in TS_UNIT_RANGES:
        if first <= ts < end:
            return f"ts {ts} looks like epoch {unit}; expected epoch milliseconds"
    return f"ts {ts} is {'before 2000-01-01' if ts < MIN_TS_MS else 'after 2100-01-01'}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts(value: object) -> int:
    """Epoch milliseconds from an int, or from an ISO-8601 string (UTC when it names no offset)."""
    if isinstance(value, bool):
        raise InvalidEvent(RejectReason.WRONG_TYPE, "ts is a boolean; expected epoch milliseconds")
    if isinstance(value, int):
        ts = value
    elif isinstance(value, str):
        try:
            if not _ISO_TS.fullmatch(value):
                raise ValueError
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise InvalidEvent(RejectReason.BAD_TIMESTAMP, f"ts {value[:64]!r} is not {ISO_TS_FORM}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts = (parsed - _EPOCH) // timedelta(milliseconds=1)  # exact: no float on the way
    else:
        raise InvalidEvent(RejectReason.WRONG_TYPE, f"ts is {type(value).__name__}; expected epoch ms or ISO-8601")
    if (problem := ts_range_problem(ts)) is not None:
        raise InvalidEvent(RejectReason.BAD_TIMESTAMP, problem)
    return ts


def _reject_constant(name: str) -> None:
    """Strict JSON, as Spark parses it: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins a pair into one code point


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Strict JSON, as Spark parses it: an object may not repeat a key, nor have one that is not Unicode."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("an object repeats a key")
    if any(_LONE_SURROGATE.search(key) for key in obj):
        raise ValueError("a key holds a lone surrogate")
    return obj


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _json_type_ok(value: object, types: tuple[type, ...]) -> bool:
    """bool is not an int here, and ints must fit in 64 bits (Spark reads larger ones as decimals)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return False
    return isinstance(value, types)


# Control characters, and the halves of surrogate pairs, which only an escape ("\\ud800") can put in a JSON
# string and which no UTF-8 text can carry on.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _check_text(name: str, value: str, limit: int, reason: RejectReason) -> None:
    if len(value) > limit:
        raise InvalidEvent(reason, f"{name} is {len(value)} characters; at most {limit} allowed")
    if _UNPRINTABLE.search(value):
        raise InvalidEvent(reason, f"{name} contains control characters or lone surrogates")


def nesting_depth(value: object) -> int:
    """How deeply containers nest in a parsed JSON value (a scalar is 0, ``{}`` is 1), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


@dataclass
class Validator:
    """Turns raw record bytes into a :class:`PageView` or raises :class:`InvalidEvent`.

    ``now_ms`` is injectable so that replays and tests judge "far future" against their own clock.
    """

    max_event_bytes: int = MAX_EVENT_BYTES
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS
    supported_versions: frozenset[int] = field(default_factory=lambda: SUPPORTED_VERSIONS)

    def validate(self, raw: bytes | str, now_ms: int | None = None) -> PageView:
        data = raw.encode() if isinstance(raw, str) else raw
        if len(data) > self.max_event_bytes:
            raise InvalidEvent(RejectReason.TOO_LARGE, f"{len(data)} bytes; at most {self.max_event_bytes} allowed")
        # Strict UTF-8 and nothing else: json.loads would guess UTF-16 or -32 from zero bytes, or skip a BOM.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent(RejectReason.NOT_JSON, f"not UTF-8: {exc}"[:200]) from None
        if text.startswith("\ufeff"):
            raise InvalidEvent(RejectReason.NOT_JSON, "starts with a byte order mark")
        try:
            obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
        except RecursionError:
            raise InvalidEvent(RejectReason.NOT_JSON, f"nested deeper than {MAX_NESTING_DEPTH} levels") from None
        except ValueError as exc:  # JSONDecodeError is one
            raise InvalidEvent(RejectReason.NOT_JSON, str(exc)[:200]) from None
        if nesting_depth(obj) > MAX_NESTING_DEPTH:
            raise InvalidEvent(RejectReason.NOT_JSON, f"nested deeper than {MAX_NESTING_DEPTH} levels")
        if not isinstance(obj, dict):
            raise InvalidEvent(RejectReason.NOT_AN_OBJECT, f"top level is {type(obj).__name__}; expected an object")
        return self.validate_object(obj, now_ms)

    def validate_object(self, obj: dict[str, Any], now_ms: int | None = None) -> PageView:
        # The version is judged first: a newer producer's record may legitimately differ in every other field.
        version = obj.get("schema_version")
        if type(version) is int and INT64_MIN <= version <= INT64_MAX and version not in self.supported_versions:
            raise InvalidEvent(
                RejectReason.UNKNOWN_VERSION,
                f"schema_version {version}; this reader knows {sorted(self.supported_versions)}",
            )
        for spec in FIELDS:
            if spec.name not in obj:
                if spec.required:
                    raise InvalidEvent(RejectReason.MISSING_FIELD, f"{spec.name} is missing")
                continue
            value = obj[spec.name]
            if not _json_type_ok(value, spec.json_types):
                raise InvalidEvent(
                    RejectReason.WRONG_TYPE,
                    f"{spec.name} is {type(value).__name__}; expected {'/'.join(t.__name__ for t in spec.json_types)}",
                )
        ts = parse_ts(obj["ts"])
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if ts > now + self.max_future_skew_ms:
            raise InvalidEvent(
                RejectReason.FUTURE_TIMESTAMP,
                f"ts {ts} is {(ts - now) / 1000:.0f}s ahead of now; at most {self.max_future_skew_ms // 1000}s allowed",
            )
        page = obj["page"]
        if not page:
            raise InvalidEvent(RejectReason.BAD_PAGE, "page is empty")
        _check_text("page", page, MAX_PAGE_LENGTH, RejectReason.BAD_PAGE)
        for name in ("event_id", "user_id", "session_id", "user_agent", "referrer"):
            value = obj.get(name)
            if value is not None:
                _check_text(name, value, MAX_TEXT_LENGTH, RejectReason.WRONG_TYPE)
        properties = obj.get("properties")
        if properties is not None and not all(isinstance(v, str) for v in properties.values()):
            raise InvalidEvent(RejectReason.WRONG_TYPE, "properties must map strings to strings")
        return PageView(
            event_id=obj["event_id"],
            user_id=obj["user_id"],
            session_id=obj["session_id"],
            page=page,
            user_agent=obj["user_agent"],
            ts=ts,
            referrer=obj.get("referrer"),
            properties=properties or None,
            schema_version=obj["schema_version"],
        )


def validate(raw: bytes | str, now_ms: int | None = None) -> PageView:
    """Validate with the default limits; raises :class:`InvalidEvent`."""
    return _DEFAULT_VALIDATOR.validate(raw, now_ms)


def spark_schema() -> StructType:
    """The Spark schema of the event, derived from :data:`FIELDS` (``ts`` read as a string, then parsed)."""
    from pyspark.sql.types import IntegerType, LongType, MapType, StringType, StructType

    spark_types = {
        "string": StringType(),
        "int": IntegerType(),
        "long": LongType(),
        "map<string,string>": MapType(StringType(), StringType()),
    }
    schema = StructType()
    for spec in FIELDS:
        # ts may be a number or an ISO string on the wire; read it as text and parse it in the job.
        schema.add(spec.name, spark_types["string" if spec.name == "ts" else spec.spark_type], nullable=True)
    return schema


_DEFAULT_VALIDATOR = Validator()
