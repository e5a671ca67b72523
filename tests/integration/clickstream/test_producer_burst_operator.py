"""The producer-burst operator against a real broker: what arrives is exactly the ground truth."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from airflow.sdk.exceptions import AirflowException

from clickstream.operators.producer_burst import ProduceClickstreamBurstOperator
from clickstream.schema import InvalidEvent, validate, window_start_ms
from clickstream.traffic import TrafficConfig, generate, ground_truth

pytestmark = pytest.mark.integration


def test_100k_burst_is_delivered_and_reads_back_as_the_ground_truth(airflow_env, topic_factory, read_topic):
    topic = topic_factory("burst", partitions=3)
    op = ProduceClickstreamBurstOperator(
        task_id="burst", topic=topic, events=100_000, seed=11, late_share=0.05, malformed_share=0.01
    )
    result = op.execute({})
    assert result["delivery"]["sent"] == result["delivery"]["delivered"] == 100_000
    assert result["delivery"]["failed"] == 0
    json.dumps(result)  # XCom-serialisable

    config = TrafficConfig.from_dict(result["ground_truth"]["config"])
    truth = ground_truth(config, 100_000)
    assert result["ground_truth"] == truth.summary()

    records = read_topic(topic)
    assert len(records) == 100_000
    counts: Counter = Counter()
    rejected: Counter = Counter()
    now = int(time.time() * 1000)
    for _, _, value in records:
        try:
            view = validate(value, now_ms=now)
        except InvalidEvent as exc:
            rejected[exc.reason.value] += 1
            continue
        counts[(view.page, window_start_ms(view.ts))] += 1
    assert counts == truth.window_counts
    assert rejected == truth.malformed
    assert truth.late > 4000


def test_requested_malformed_records_arrive_byte_for_byte(airflow_env, topic_factory, read_topic):
    topic = topic_factory("malformed", partitions=1)
    op = ProduceClickstreamBurstOperator(task_id="burst", topic=topic, events=3000, seed=5, malformed_share=0.1)
    config = TrafficConfig.from_dict(op.execute({})["ground_truth"]["config"])
    expected = [(r.key, r.value) for r in generate(config, 3000)]
    malformed_expected = [(r.key, r.value) for r in generate(config, 3000) if r.malformed]
    assert len(malformed_expected) > 200
    # One partition: the topic holds the generated stream in order, byte for byte.
    assert [(key, value) for _, key, value in read_topic(topic)] == expected


def test_unreachable_broker_fails_the_task_fast_and_clearly(airflow_env, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KAFKA_DOWN", json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:1"}})
    )
    op = ProduceClickstreamBurstOperator(task_id="burst", topic="t", events=10, kafka_config_id="kafka_down")
    started = time.monotonic()
    with pytest.raises(AirflowException, match=r"cannot reach Kafka at 127.0.0.1:1 within 15s"):
        op.execute({})
    assert time.monotonic() - started < 25


def test_missing_topic_fails_saying_how_to_create_it(airflow_env, kafka_broker):
    kafka_broker.grant(events="clickstream-no-such-topic")  # allowed, but absent (else the broker says "denied")
    op = ProduceClickstreamBurstOperator(task_id="burst", topic="clickstream-no-such-topic", events=10)
    with pytest.raises(AirflowException, match=r"topic .clickstream-no-such-topic. is not available.*create it first"):
        op.execute({})
