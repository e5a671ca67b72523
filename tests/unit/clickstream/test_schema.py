from __future__ import annotations

import json

import corpus
import pytest

from clickstream import schema
from clickstream.schema import InvalidEvent, RejectReason, validate

NOW = corpus.NOW
event = corpus.event


def reason_of(raw) -> RejectReason:
    with pytest.raises(InvalidEvent) as info:
        validate(raw if isinstance(raw, bytes) else json.dumps(raw).encode(), now_ms=NOW)
    return info.value.reason


def test_valid_event_round_trips():
    view = validate(json.dumps(event(properties={"ab": "B"})).encode(), now_ms=NOW)
    assert (view.page, view.ts, view.properties) == ("/home", NOW - 1000, {"ab": "B"})
    assert validate(view.to_json_bytes(), now_ms=NOW) == view


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2025-06-10T05:04:00Z", 1749531840000),
        ("2025-06-10T05:04:00.250+00:00", 1749531840250),
        ("2025-06-10T07:04:00+02:00", 1749531840000),
        ("2025-06-10T05:04:00", 1749531840000),  # no offset: UTC
    ],
)
def test_iso_timestamps_are_normalised_to_epoch_ms(text, expected_ms):
    assert validate(json.dumps(event(ts=text)), now_ms=NOW).ts == expected_ms


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"event_id": "x", "page"', RejectReason.NOT_JSON),
        (b"\xff\xfe not utf-8", RejectReason.NOT_JSON),
        (b'["/home", 1]', RejectReason.NOT_AN_OBJECT),
        (b'{"page": "/a", "page": "/b"}', RejectReason.NOT_JSON),
        (b'{"ts": NaN}', RejectReason.NOT_JSON),
        (event(ts=2**70), RejectReason.WRONG_TYPE),
        (event(page=...), RejectReason.MISSING_FIELD),
        (event(user_id=7), RejectReason.WRONG_TYPE),
        (event(ts=True), RejectReason.WRONG_TYPE),
        (event(schema_version="1"), RejectReason.WRONG_TYPE),
        (event(properties={"n": 1}), RejectReason.WRONG_TYPE),
        (event(ts="yesterday"), RejectReason.BAD_TIMESTAMP),
        (event(ts=1_750_000_000), RejectReason.BAD_TIMESTAMP),  # seconds, not ms
        (event(ts=NOW + schema.MAX_FUTURE_SKEW_MS + 1), RejectReason.FUTURE_TIMESTAMP),
        (event(page=""), RejectReason.BAD_PAGE),
        (event(page="/home\n"), RejectReason.BAD_PAGE),
        (event(page="/" + "p" * schema.MAX_PAGE_LENGTH), RejectReason.BAD_PAGE),
        (event(properties={"pad": "x" * schema.MAX_EVENT_BYTES}), RejectReason.TOO_LARGE),
        (event(schema_version=2), RejectReason.UNKNOWN_VERSION),
    ],
)
def test_each_rejection_has_its_typed_reason(raw, reason):
    assert reason_of(raw) is reason


def test_unknown_version_wins_over_other_differences():
    # A newer producer may change any field; the reader must say "unknown version", not "missing field".
    assert reason_of({"schema_version": 3, "page_path": "/home"}) is RejectReason.UNKNOWN_VERSION


def test_future_skew_is_judged_against_the_given_clock():
    ts = NOW + schema.MAX_FUTURE_SKEW_MS - 1
    assert validate(json.dumps(event(ts=ts)), now_ms=NOW).ts == ts


def test_window_label_is_the_seeds_redis_field_format():
    start = schema.window_start_ms(1749531840000 + 59_999)
    assert start == 1749531840000
    assert schema.window_label(start) == "2025-06-10T05:04:00"


def test_spark_schema_is_derived_from_the_fields():
    spark_schema = schema.spark_schema()
    assert spark_schema.fieldNames() == list(schema.FIELD_NAMES)
    types = {f.name: f.dataType.simpleString() for f in spark_schema.fields}
    assert types["schema_version"] == "int"
    assert types["ts"] == "string"  # numbers and ISO strings are both read, then parsed
    assert types["properties"] == "map<string,string>"
