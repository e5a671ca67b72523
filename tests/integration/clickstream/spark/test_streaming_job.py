"""The streaming application end to end: real Kafka in, real Spark, real Redis out, against the ground truth."""

from __future__ import annotations

import time

import pytest
from clickstream import redis_layout
from clickstream.schema import window_label
from clickstream.traffic import TrafficConfig, ground_truth
from spark_jobs import log_tail, produce, redis_counts, wait_exit

pytestmark = pytest.mark.integration


def test_in_order_stream_counts_equal_the_ground_truth(
    kafka_broker, topic_factory, redis_client, streaming_job, read_topic
):
    topic, dlq = topic_factory("stream", partitions=3), topic_factory("stream-dlq", partitions=1)
    now = int(time.time() * 1000)
    config = TrafficConfig(seed=3, start_ms=now - 240_000, events_per_second=100, malformed_share=0.02)
    produce(kafka_broker.bootstrap_servers, topic, config, 24_000)
    truth = ground_truth(config, 24_000)

    job = streaming_job(topic, dlq, "--available-now", "--max-offsets-per-trigger", "6000")
    assert wait_exit(job, 240) == 0, log_tail(job)

    assert redis_counts(redis_client, truth) == dict(truth.window_counts)
    # The seed's layout, literally: HGET click_count:<page> <window label> is the count.
    (page, window), n = next(iter(truth.window_counts.items()))
    assert int(redis_client.hget(f"click_count:{page}", window_label(window))) == n

    # Every malformed record is in the dead-letter topic, byte for byte, with its reason.
    letters = read_topic(dlq)
    malformed = sum(truth.malformed.values())
    assert len(letters) >= malformed  # at least once; no crash happened here, so exactly once
    assert len(letters) == malformed

    # Per window, for dashboards in one call: total, approximate unique users, top pages.
    busiest = max(
        {w for _, w in truth.window_counts},
        key=lambda w: sum(n for (_, w2), n in truth.window_counts.items() if w2 == w),
    )
    summary = redis_layout.read_window(redis_client, window_label(busiest))
    expected_total = sum(n for (_, w), n in truth.window_counts.items() if w == busiest)
    assert summary["total"] == expected_total
    assert 0 < summary["unique_users"] <= expected_total
    _, top_count = summary["top_pages"][0]
    assert top_count == max(n for (_, w), n in truth.window_counts.items() if w == busiest)

    progress = {
        k.decode(): v.decode() for k, v in redis_client.hgetall("clickstream:progress:clickstream_counts").items()
    }
    assert int(progress["batch_id"]) >= 3
    assert progress["newest_window"] == window_label(max(w for _, w in truth.window_counts))
    assert "watermark" in progress and int(progress["updated_ms"]) >= now
