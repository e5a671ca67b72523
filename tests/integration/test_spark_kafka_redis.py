"""Spark is real: a structured streaming query reads Kafka through the connector and writes to Redis."""

from __future__ import annotations

import pytest
from spark_jobs import foreach_batch_query

pytestmark = pytest.mark.integration


def test_streaming_query_total_equals_produced(kafka_broker, topic_factory, spark, redis_client, tmp_path):
    from confluent_kafka import Producer

    topic = topic_factory("spark-total", partitions=3)
    produced = 2_500
    producer = Producer(kafka_broker.client_config("producer", acks="all"))
    for i in range(produced):
        producer.produce(topic, key=str(i % 13).encode(), value=str(i).encode())
    assert producer.flush(30) == 0

    kwargs = {k: redis_client.connection_pool.connection_kwargs[k] for k in ("port", "username", "password")}
    totals_key = f"test:spark-total:{topic}"

    def write_batch_total(batch_df, batch_id: int) -> None:
        import redis

        # Keyed by batch id: a replayed batch overwrites its own field instead of adding again.
        redis.Redis(host="127.0.0.1", **kwargs).hset(totals_key, str(batch_id), batch_df.count())

    query = foreach_batch_query(
        spark,
        kafka_broker.client_config("streaming"),
        topic,
        write_batch_total,
        tmp_path / "checkpoint",
        max_offsets=1000,
    )
    assert query.awaitTermination(180), "the streaming query did not finish"
    assert query.exception() is None

    per_batch = {int(k): int(v) for k, v in redis_client.hgetall(totals_key).items()}
    assert len(per_batch) >= 3, f"maxOffsetsPerTrigger=1000 should split {produced} records: {per_batch}"
    assert sum(per_batch.values()) == produced
