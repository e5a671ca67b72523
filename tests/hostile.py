"""Hypothesis strategies for hostile Kafka records: whatever bytes a producer, a bug or an attacker can send.

Biased toward the edges the validators judge: the 4 KiB record limit, the page length limit, the ts range
(and ts sent in seconds, microseconds or nanoseconds), 2^63 +- 1, escaped lone surrogates, byte order marks,
UTF-16, overlong UTF-8, duplicate keys, deep nesting, floats with exponents and -0.
"""

from __future__ import annotations

import json

import corpus
from hypothesis import strategies as st

from clickstream import schema

NOW = corpus.NOW
_TS_EDGES = [
    edge + delta
    for edge in (
        schema.MIN_TS_MS,
        schema.MAX_TS_MS,
        NOW + schema.MAX_FUTURE_SKEW_MS,
        *(bound for _, first, end in schema.TS_UNIT_RANGES for bound in (first, end)),
    )
    for delta in (-1, 0, 1)
]
INT_EDGES = [0, 1, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, -(2**63), -(2**63) - 1, 2**64]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\ude00\ud83d"]

integers = st.one_of(
    st.sampled_from(INT_EDGES + _TS_EDGES),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.integers(min_value=NOW - 3_600_000, max_value=NOW + 3_600_000),
    st.integers(),
)
# Any Unicode, lone surrogates included (json.dumps escapes them; a raw encoding makes the bytes invalid).
characters = st.one_of(st.characters(codec=None), st.sampled_from(["\x7f", "\x00", "\n", "\\", '"', "\ufeff"]))
texts = st.one_of(
    st.text(characters, max_size=24),
    st.lists(st.one_of(st.text(characters, max_size=4), st.sampled_from(SURROGATES)), max_size=4).map("".join),
)


def _iso_part(width: int, top: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=top).map(lambda n: str(n).zfill(width))


iso_timestamps = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, tz: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{tz}",
    st.one_of(st.sampled_from(["2025", "2000", "1999", "2099", "2100", "9999", "0000"]), _iso_part(4, 9999)),
    _iso_part(2, 13),
    _iso_part(2, 32),
    st.sampled_from(["T", "T", "T", " ", "t"]),
    _iso_part(2, 24),
    _iso_part(2, 60),
    _iso_part(2, 61),
    st.one_of(st.just(""), st.integers(min_value=0, max_value=10**9).map(lambda n: "." + str(n))),
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+02:00", "+18:00", "-18:00", "+18:01", "+19:00", "+02:00:30"]),
)

scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)

pages_near_the_limit = st.builds(
    lambda n, ch: "/" + ch * n,
    st.integers(schema.MAX_PAGE_LENGTH - 3, schema.MAX_PAGE_LENGTH + 1),
    st.sampled_from(["p", "\u00e9", "\u65e5", "\U0001f600"]),
)
_FIELD_VALUES = {
    "ts": st.one_of(integers, iso_timestamps, json_values),
    "schema_version": st.one_of(st.sampled_from([1, 1, 1, 2, 0]), integers, json_values),
    "page": st.one_of(pages_near_the_limit, texts, json_values),
    "properties": st.one_of(st.dictionaries(texts, texts, max_size=3), json_values),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, object]:
    """A valid event with some of its fields replaced by hostile values, removed, or joined by others."""
    event = corpus.event(
        page=draw(st.sampled_from(["/home", "/cart", "/p/1", "/caf\u00e9"])),
        ts=draw(st.integers(min_value=NOW - 3_600_000, max_value=NOW)),
    )
    for name in draw(st.lists(st.sampled_from(schema.FIELD_NAMES), max_size=3, unique=True)):
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete"]))
        if action == "delete":
            event.pop(name, None)
        else:
            event[name] = draw(_FIELD_VALUES.get(name, st.one_of(texts, json_values)))
    for key in draw(st.lists(texts, max_size=2)):
        event[key] = draw(json_values)
    return event


def _nested(depth: int, container: str) -> str:
    open_, close = ("[", "]") if container == "list" else ('{"k":', "}")
    return open_ * (depth - 1) + ("[]" if container == "list" else "{}") + close * (depth - 1)


def _with_member(obj_text: str, member: str) -> str:
    """A JSON object's text with one more ``"name": value`` member written at its end."""
    return obj_text[:-1] + (", " if obj_text != "{}" else "") + member + "}"


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """The bytes of one Kafka record."""
    kind = draw(st.sampled_from(["event"] * 6 + ["sized", "nested", "spliced", "bytes", "json"]))
    if kind == "bytes":
        return draw(st.binary(max_size=schema.MAX_EVENT_BYTES + 16))
    value = draw(json_values) if kind == "json" else draw(events())
    ascii_only = draw(st.booleans())
    text = json.dumps(value, ensure_ascii=ascii_only)
    if kind == "sized":  # pad to within a few bytes of the record limit
        target = schema.MAX_EVENT_BYTES + draw(st.integers(-3, 2))
        pad = target - len(text.encode("utf-8", "surrogatepass")) - len(', "pad": ""')
        if text.startswith("{") and pad >= 0:
            text = _with_member(text, f'"pad": "{"x" * pad}"')
    elif kind == "nested":
        depth = draw(st.integers(schema.MAX_NESTING_DEPTH - 2, schema.MAX_NESTING_DEPTH + 2))
        inner = _nested(depth - 1, draw(st.sampled_from(["list", "dict"])))
        text = _with_member(text, f'"deep": {inner}') if text.startswith("{") else inner
    elif kind == "spliced":  # duplicate keys, exotic numbers, stray bytes
        splice = draw(st.sampled_from(['"page": "/dup"', '"n": 1e400', '"n": -0', '"n": -0.0', '"n": 1E+2',
                                       '"n": ' + "9" * 400, '"n": 0.1e-400', '"ts": 1e3']))  # fmt: skip
        if text.startswith("{"):
            text = _with_member(text, splice)
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw: invalid UTF-8
    mangle = draw(st.sampled_from(["none"] * 12 + ["bom", "utf16", "truncate", "byte", "trailing"]))
    if mangle == "bom":
        data = b"\xef\xbb\xbf" + data
    elif mangle == "utf16":
        data = text.encode("utf-16-le", "surrogatepass")
    elif mangle == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif mangle == "byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif mangle == "trailing":
        data += draw(st.sampled_from([b" ", b"\n", b"{}", b"x", b"\x00"]))
    return data
