"""Spark transforms on a local session: the same verdicts as the Python validator, and correct windows."""

from __future__ import annotations

import json
from collections import Counter

import corpus
import pytest
from pyspark.sql import functions as F
from spark_jobs import dense_hyperloglog

from clickstream.schema import InvalidEvent, validate, window_start_ms
from clickstream.spark.parse import invalid_events, parse_events
from clickstream.spark.transforms import batch_summary, compact, dead_letters, tally

pytestmark = pytest.mark.integration


def kafka_like(spark, values: list[bytes]):
    rows = [(b"k", value, "events", 0, offset) for offset, value in enumerate(values)]
    return spark.createDataFrame(rows, "key binary, value binary, topic string, partition int, offset long")


def python_verdict(raw: bytes):
    try:
        return validate(raw, now_ms=corpus.NOW), None
    except InvalidEvent as exc:
        return None, exc.reason.value


def test_spark_and_python_validators_agree_on_every_record(spark):
    cases = corpus.corpus()
    parsed = parse_events(kafka_like(spark, [raw for raw, _ in cases]), now_ms=F.lit(corpus.NOW)).orderBy("offset")
    rows = parsed.select("offset", "reject_reason", "page", "user_id", "ts_ms", "referrer").collect()
    assert len(rows) == len(cases)
    disagreements = []
    for row, (raw, expected) in zip(rows, cases, strict=True):
        view, reason = python_verdict(raw)
        assert reason == (expected.value if expected else None), raw[:120]
        if row.reject_reason != reason:
            disagreements.append((raw[:100], reason, row.reject_reason))
        elif view is not None:
            assert (row.page, row.user_id, row.ts_ms, row.referrer) == (view.page, view.user_id, view.ts, view.referrer)
    assert disagreements == []
    assert {r.reject_reason for r in rows} >= {e.value for _, e in cases if e}


def test_window_counts_match_the_ground_truth_in_batch(spark):
    from clickstream.traffic import TrafficConfig, generate, ground_truth

    config = TrafficConfig(start_ms=corpus.NOW - 900_000, events_per_second=20, late_share=0.2, malformed_share=0.05)
    truth = ground_truth(config, 5000)
    parsed = parse_events(kafka_like(spark, [r.value for r in generate(config, 5000)]), now_ms=F.lit(corpus.NOW))
    rows = tally(parsed).collect()
    counts = {(r.page, r.window_start_ms): r["count"] for r in rows if r.reject_reason is None}
    assert counts == dict(truth.window_counts)
    invalid: Counter[str] = Counter()
    for r in (r for r in rows if r.reject_reason is not None):
        invalid[r.reject_reason] += r["count"]
    assert invalid == truth.malformed == Counter(r.reject_reason for r in invalid_events(parsed).collect())
    assert all(ws == window_start_ms(ws) for _, ws in counts)
    assert (min(r.first_offset for r in rows), max(r.last_offset for r in rows)) == (0, 4999)


def test_dead_letters_keep_the_original_bytes_and_say_why(spark):
    raw = [b'{"broken', corpus.encoded(corpus.event(page=""))]
    letters = dead_letters(invalid_events(parse_events(kafka_like(spark, raw), now_ms=F.lit(corpus.NOW)))).collect()
    assert [bytes(r.value) for r in letters] == raw
    headers = [{h.key: bytes(h.value).decode() for h in r.headers} for r in letters]
    assert [h["reject_reason"] for h in headers] == ["not_json", "bad_page"]
    assert [h["source_offset"] for h in headers] == ["0", "1"]
    assert all(h["source_topic"] == "events" and h["reject_detail"] for h in headers)


def test_the_batch_summary_counts_like_the_ground_truth_and_fills_users_as_pfadd_does(spark, redis_client):
    from clickstream.traffic import TrafficConfig, generate, ground_truth

    config = TrafficConfig(start_ms=corpus.NOW - 300_000, events_per_second=20, malformed_share=0.05)
    truth = ground_truth(config, 4000)
    events = list(generate(config, 4000))
    # Ids of every length around the hash's 8-byte blocks, and beyond ASCII, beside the generated ones.
    odd_ids = ["", "é", "ユーザー", *("x" * n for n in range(1, 20))]
    clean = generate(TrafficConfig(seed=7, start_ms=corpus.NOW - 300_000, events_per_second=20), len(odd_ids))
    odd = [
        json.dumps({**json.loads(r.value), "user_id": user}).encode() for r, user in zip(clean, odd_ids, strict=True)
    ]
    records = compact(parse_events(kafka_like(spark, [r.value for r in events] + odd), now_ms=F.lit(corpus.NOW)))
    summary = batch_summary(records.repartition(3))  # partials from several tasks, merged

    valid = records.where("reject_reason is null").select("page", "window_start_ms", "ts_ms", "user_id").collect()
    assert summary["records"] == len(events) + len(odd)
    assert summary["invalid"] == dict(truth.malformed)
    assert summary["newest_ms"] == max(r.ts_ms for r in valid)
    views = Counter((r.page, r.window_start_ms) for r in valid)
    assert {(p, w["start_ms"]): n for w in summary["windows"] for p, n in w["views"].items()} == views
    assert sum(views.values()) == sum(truth.window_counts.values()) + len(odd)

    for window in summary["windows"]:
        ids = [r.user_id for r in valid if r.window_start_ms == window["start_ms"]]
        expected = dense_hyperloglog(redis_client, *ids)
        assert window["users"][16:] == expected[16:]  # the registers, bit for bit
        redis_client.set("tallied", window["users"])
        redis_client.set("expected", expected)
        assert redis_client.pfcount("tallied") == redis_client.pfcount("expected")
        redis_client.delete("expected", "tallied")
