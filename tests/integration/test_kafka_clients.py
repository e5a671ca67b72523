"""The broker is real: two independent client libraries agree on what it stored."""

from __future__ import annotations

from collections import defaultdict

import pytest

pytestmark = pytest.mark.integration

EVENTS = 10_000


def test_confluent_produced_events_read_back_by_kafka_python(kafka_broker, topic_factory):
    from confluent_kafka import Producer
    from kafka import KafkaConsumer, TopicPartition

    topic = topic_factory("roundtrip", partitions=3)
    producer = Producer(
        kafka_broker.client_config("producer", **{"acks": "all", "enable.idempotence": True, "linger.ms": 5})
    )
    sent: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            sent[msg.partition()].append((msg.key(), msg.value()))

    for i in range(EVENTS):
        key = f"user-{i % 97}".encode()
        producer.produce(
            topic, key=key, value=f'{{"seq": {i}, "user": "{key.decode()}"}}'.encode(), on_delivery=on_delivery
        )
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    assert sum(len(v) for v in sent.values()) == EVENTS
    assert len(sent) == 3, "keys should spread over all three partitions"

    consumer = KafkaConsumer(  # as the reconciler, which may read the topic, and with kafka-python's own SCRAM
        bootstrap_servers=kafka_broker.bootstrap_servers,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="reconciler",
        sasl_plain_password=kafka_broker.passwords()["reconciler"],
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    partitions = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    received: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    total = 0
    while total < EVENTS:
        batch = consumer.poll(timeout_ms=5000, max_records=5000)
        if not batch:
            break
        for tp, records in batch.items():
            received[tp.partition].extend((r.key, r.value) for r in records)
            total += len(records)
    consumer.close()

    # Same records, same per-partition order, same keys: nothing lost, duplicated or reordered.
    assert {p: len(v) for p, v in received.items()} == {p: len(v) for p, v in sent.items()}
    for partition, records in sent.items():
        assert received[partition] == records
    # A key always lands on one partition, so per-key order is per-partition order.
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for partition, records in received.items():
        for key, _ in records:
            partitions_of_key[key].add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values())
