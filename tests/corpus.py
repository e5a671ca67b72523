"""Records every validator must agree on: the Python one and the Spark one (tests/.../test_transforms.py)."""

from __future__ import annotations

import json

from clickstream import schema
from clickstream.schema import RejectReason
from clickstream.traffic import TrafficConfig, generate

NOW = 1_750_000_000_000


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "0b0f6e3a-1d2c-4b5a-8c7d-000000000001",
        "schema_version": 1,
        "user_id": "u000001",
        "session_id": "s-1",
        "page": "/home",
        "referrer": None,
        "user_agent": "Mozilla/5.0",
        "ts": NOW - 1000,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def _nested(depth: int) -> object:
    """A JSON array nested ``depth`` levels deep."""
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


def encoded(obj: object) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


CRAFTED: list[tuple[object, RejectReason | None]] = [
    (event(), None),
    (event(referrer="/search", properties={"ab": "B", "x": "y"}), None),
    (event(ts="2025-06-10T05:04:00Z"), None),
    (event(ts="2025-06-10T07:04:00.250+02:00"), None),
    (event(ts="2025-06-10T05:04:00"), None),
    (event(properties={}), None),
    (event(properties=None), None),
    (b'{"event_id": "x", "page"', RejectReason.NOT_JSON),
    (b"\xff\xfe not utf-8", RejectReason.NOT_JSON),
    (b'{"page": "/a", "page": "/b"}', RejectReason.NOT_JSON),
    (b'{"ts": NaN}', RejectReason.NOT_JSON),
    (b'["/home", 1]', RejectReason.NOT_AN_OBJECT),
    (b'"just a string"', RejectReason.NOT_AN_OBJECT),
    (b"null", RejectReason.NOT_AN_OBJECT),
    (event(page=...), RejectReason.MISSING_FIELD),
    (event(event_id=...), RejectReason.MISSING_FIELD),
    (event(page=None), RejectReason.WRONG_TYPE),
    (event(user_id=7), RejectReason.WRONG_TYPE),
    (event(ts=True), RejectReason.WRONG_TYPE),
    (event(ts=1.5e12), RejectReason.WRONG_TYPE),
    (event(ts=2**70), RejectReason.WRONG_TYPE),
    (event(schema_version="1"), RejectReason.WRONG_TYPE),
    (event(properties={"n": 1}), RejectReason.WRONG_TYPE),
    (event(properties={"n": {"deep": "x"}}), RejectReason.WRONG_TYPE),
    (event(properties=["a"]), RejectReason.WRONG_TYPE),
    (event(user_agent="x" * (schema.MAX_TEXT_LENGTH + 1)), RejectReason.WRONG_TYPE),
    (event(referrer="/a\tb"), RejectReason.WRONG_TYPE),
    (event(ts="yesterday"), RejectReason.BAD_TIMESTAMP),
    (event(ts="1750000000000"), RejectReason.BAD_TIMESTAMP),  # digits in a string are not epoch ms
    (event(extra_field=5), None),  # unknown fields are ignored (off the fast path, still valid)
    (event(ts=1_750_000_000), RejectReason.BAD_TIMESTAMP),
    (event(ts=NOW + schema.MAX_FUTURE_SKEW_MS + 1), RejectReason.FUTURE_TIMESTAMP),
    (event(ts=NOW + schema.MAX_FUTURE_SKEW_MS), None),
    (event(page=""), RejectReason.BAD_PAGE),
    (event(page="/home\n"), RejectReason.BAD_PAGE),
    (event(page="/" + "p" * schema.MAX_PAGE_LENGTH), RejectReason.BAD_PAGE),
    (event(page="/" + "p" * (schema.MAX_PAGE_LENGTH - 1)), None),
    (event(page="/caf\u00e9/\u65e5\u672c"), None),
    (event(properties={"pad": "x" * schema.MAX_EVENT_BYTES}), RejectReason.TOO_LARGE),
    (event(schema_version=2), RejectReason.UNKNOWN_VERSION),
    ({"schema_version": 3, "page_path": "/home"}, RejectReason.UNKNOWN_VERSION),
]


# Found by the property-based parity test (tests/integration/clickstream/spark/test_hostile_records.py) or
# reported from the field; each once made the validators disagree or a job fail.
HOSTILE: list[tuple[object, RejectReason | None]] = [
    (event(ts=10**16), RejectReason.BAD_TIMESTAMP),  # microseconds: overflowed timestamp_millis in every batch
    (event(ts=1_750_000_000_000_000), RejectReason.BAD_TIMESTAMP),  # microseconds
    (event(ts=1_750_000_000_000_000_000), RejectReason.BAD_TIMESTAMP),  # nanoseconds
    (event(ts=2**63 - 1), RejectReason.BAD_TIMESTAMP),
    (event(ts=-(2**63)), RejectReason.BAD_TIMESTAMP),
    (event(ts=2**63), RejectReason.WRONG_TYPE),
    (event(ts=-(2**63) - 1), RejectReason.WRONG_TYPE),
    (event(ts=schema.MAX_TS_MS), RejectReason.BAD_TIMESTAMP),
    (event(ts=schema.MIN_TS_MS - 1), RejectReason.BAD_TIMESTAMP),
    (event(ts=schema.MIN_TS_MS), None),
    (event(ts="9999-12-31T23:59:59Z"), RejectReason.BAD_TIMESTAMP),
    (event(ts="2025-06-10"), RejectReason.BAD_TIMESTAMP),  # Spark alone would read it
    (event(ts="2025-06-10 05:04:00"), RejectReason.BAD_TIMESTAMP),
    (event(ts="2025-06-10T05:04:00+19:00"), RejectReason.BAD_TIMESTAMP),  # Python alone would read it
    (event(ts="2025-06-10T05:04:00.999999-18:00"), None),
    (event(ts="2025-06-10T05:04:00Z\n"), RejectReason.BAD_TIMESTAMP),
    (event(ts="\u0662\u0660\u0662\u0665-06-10T05:04:00Z"), RejectReason.BAD_TIMESTAMP),  # Arabic-Indic digits
    (event(ts="2025-02-30T05:04:00Z"), RejectReason.BAD_TIMESTAMP),
    (event(schema_version=2**63 - 1), RejectReason.UNKNOWN_VERSION),
    (event(schema_version=2**64), RejectReason.WRONG_TYPE),
    (event(page="/\ud800"), RejectReason.BAD_PAGE),  # a lone surrogate: no UTF-8 can carry it
    (event(page="/\ud83d\ude00"), None),  # a pair is one code point
    (event(user_id="u\udc00"), RejectReason.WRONG_TYPE),
    (event(page="/del\x7f"), RejectReason.BAD_PAGE),  # DEL needs no escape in JSON
    (event(properties={"x": "\ud800"}), None),
    (b"\xef\xbb\xbf" + json.dumps(event()).encode(), RejectReason.NOT_JSON),  # a byte order mark
    (json.dumps(event()).encode("utf-16-le"), RejectReason.NOT_JSON),
    (json.dumps(event(page="/\ud800"), ensure_ascii=False).encode("utf-8", "surrogatepass"), RejectReason.NOT_JSON),
    (json.dumps(event(extra="caf\xe9 \U0001f600"), ensure_ascii=False).encode(), None),  # raw UTF-8
    (json.dumps(event()).encode()[:-1] + b', "x": "\xc0\xaf"}', RejectReason.NOT_JSON),  # an overlong form
    (json.dumps(event(extra=_nested(schema.MAX_NESTING_DEPTH - 1))).encode(), None),
    (json.dumps(event(extra=_nested(schema.MAX_NESTING_DEPTH))).encode(), RejectReason.NOT_JSON),
    (b"[" * 2000 + b"]" * 2000, RejectReason.NOT_JSON),
    (json.dumps(event()).encode()[:-1] + b', "n": ' + b"9" * 1200 + b"}", None),
    (json.dumps(event()).encode()[:-1] + b', "n": 1e400, "m": -0}', None),
    (event(ts=-0), RejectReason.BAD_TIMESTAMP),
    (b"", RejectReason.NOT_JSON),
    (b"\x00", RejectReason.NOT_JSON),
]


def corpus() -> list[tuple[bytes, RejectReason | None]]:
    """The crafted cases plus a generated stream with every kind of malformed record in it."""
    cases = [(encoded(raw), reason) for raw, reason in CRAFTED + HOSTILE]
    config = TrafficConfig(start_ms=NOW - 600_000, events_per_second=10, malformed_share=0.1, late_share=0.1)
    cases += [(r.value, r.malformed) for r in generate(config, 3000)]
    return cases
