"""A record that passes validation yet fails inside Spark is isolated, dead-lettered, and the stream goes on.

The failure is the test's own: a Python UDF after the product's parse that throws for one page, which no
validator rule catches, handed to the sink as its ``prepare`` step. The sink runs in a real streaming query,
with real Kafka in and out and real Redis.
"""

from __future__ import annotations

import json
import time

import corpus
import pytest
from confluent_kafka import Producer
from pyspark.sql import functions as F
from pyspark.sql.types import StringType
from spark_jobs import foreach_batch_query, produce, redis_counts, redis_dead_letters

from clickstream import redis_layout
from clickstream.kafka_security import SECURITY_ENV, security_settings
from clickstream.redis_layout import COUNTS_QUERY
from clickstream.spark.parse import parse_events
from clickstream.spark.sinks import PageViewsSink
from clickstream.traffic import TrafficConfig, ground_truth

pytestmark = pytest.mark.integration

POISON_PAGE = "/poison"


def all_counts(client) -> int:
    return sum(int(n) for key in client.scan_iter("click_count:*") for n in client.hvals(key))


def test_a_record_that_fails_inside_spark_is_dead_lettered_and_the_rest_counts_once(
    spark, kafka_broker, topic_factory, redis_client, redis_server, monkeypatch, read_topic, tmp_path
):
    topic = topic_factory("poison", partitions=2)
    dlq = topic_factory("poison-dlq", partitions=1, dead_letters_of=topic)
    now = int(time.time() * 1000)
    config = TrafficConfig(seed=11, start_ms=now - 120_000, events_per_second=50, malformed_share=0.01)
    produce(kafka_broker.client_config("producer"), topic, config, 3000)
    truth = ground_truth(config, 3000)
    poison = json.dumps(corpus.event(page=POISON_PAGE, ts=now - 60_000)).encode()
    producer = Producer(kafka_broker.client_config("producer", acks="all"))
    producer.produce(topic, key=b"u-poison", value=poison)
    assert producer.flush(30) == 0

    def breaks_on_poison(page):  # nested, so Spark's workers get it by value (no hints: a plain UDF)
        if page == "/poison":
            raise ValueError(f"page {page} breaks this job")
        return page

    def prepare(raw):  # the product's parse, then the test's own failure
        return parse_events(raw).withColumn("page", F.udf(breaks_on_poison, StringType())("page"))

    # The sink runs in this process's Spark session and reads its Kafka login from the environment.
    monkeypatch.setenv(SECURITY_ENV, json.dumps(security_settings(kafka_broker.client_config("streaming"))))
    sink = PageViewsSink(
        redis_server.url("writer"),
        kafka_broker.bootstrap_servers,
        dlq,
        watermark_delay_ms=600_000,
        retention_ms=None,
        prepare=prepare,
    )
    query = foreach_batch_query(
        spark, kafka_broker.client_config("streaming"), topic, sink, tmp_path / "checkpoint", name=COUNTS_QUERY
    )
    started = time.monotonic()
    query.awaitTermination(300)
    isolated_in_s = time.monotonic() - started
    assert query.exception() is None, query.exception()

    # Everything but the poison counted, exactly once; the poison page counted nowhere.
    assert redis_counts(redis_client) == dict(truth.window_counts)
    assert all_counts(redis_client) == truth.valid
    assert not redis_client.exists(f"click_count:{POISON_PAGE}")
    commit = redis_layout.read_commit(redis_client, redis_layout.commit_key(query.id))
    assert commit.batch_id == query.lastProgress["batchId"]

    # The poison is in the dead-letter topic, byte for byte, with where it came from and why.
    letters = read_topic(dlq, headers=True)
    isolated = [letter for letter in letters if letter[3]["reject_reason"] == "processing_error"]
    assert len(letters) == sum(truth.malformed.values()) + 1
    assert len(isolated) == 1
    malformed = {reason: n for reason, n in truth.malformed.items() if n}
    assert redis_dead_letters(redis_client) == {**malformed, "processing_error": 1}
    _, _, value, headers = isolated[0]
    assert value == poison
    assert headers["source_topic"] == topic
    assert "ValueError: page /poison breaks this job" in headers["reject_detail"]
    source = [(p, v) for p, _, v in read_topic(topic)]
    partition = int(headers["source_partition"])
    offsets = [i for i, (p, v) in enumerate(r for r in source if r[0] == partition) if v == poison]
    assert offsets == [int(headers["source_offset"])]
    print(f"\nisolated 1 poison record of {truth.count + 1} in {isolated_in_s:.1f} s: {headers}")
