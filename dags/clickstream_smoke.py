"""A smoke test of the stack through Airflow connections: Kafka round trip, then Redis round trip.

Run it with ``airflow dags test clickstream_smoke`` (what ``make demo`` and the tests do).
"""

from __future__ import annotations

import uuid

from airflow.sdk import dag, task

SMOKE_TOPIC = "clickstream-smoke"
SMOKE_KEY = "clickstream:smoke:last_token"


@dag(dag_id="clickstream_smoke", schedule=None, catchup=False, tags=["clickstream", "smoke"])
def clickstream_smoke():
    @task
    def kafka_roundtrip() -> str:
        """Create the smoke topic, produce a fresh token and read that exact record back, each step as the
        principal that does it in the pipeline (admin, producer, reconciler)."""
        from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
        from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
        from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
        from confluent_kafka import TopicPartition

        KafkaAdminClientHook(kafka_config_id="kafka_admin").create_topic([(SMOKE_TOPIC, 1, 1)])
        token = uuid.uuid4().hex
        delivered = []
        producer = KafkaProducerHook(kafka_config_id="kafka_default").get_producer()
        producer.produce(
            SMOKE_TOPIC, key=b"smoke", value=token.encode(), on_delivery=lambda err, msg: delivered.append((err, msg))
        )
        producer.flush(30)
        if not delivered or delivered[0][0] is not None:
            raise RuntimeError(f"the smoke record was not delivered to {SMOKE_TOPIC}: {delivered}")
        offset = delivered[0][1].offset()

        consumer = KafkaConsumerHook(topics=[SMOKE_TOPIC], kafka_config_id="kafka_reconciler").get_conn
        try:
            consumer.assign([TopicPartition(SMOKE_TOPIC, 0, offset)])
            message = consumer.poll(30)
        finally:
            consumer.close()
        if message is None or message.error() or message.value() != token.encode():
            raise RuntimeError(f"read back {message and message.value()!r} at offset {offset}, expected {token!r}")
        return token

    @task
    def redis_roundtrip(token: str) -> str:
        """Store the token Kafka gave back in Redis and read it again."""
        from airflow.providers.redis.hooks.redis import RedisHook

        client = RedisHook(redis_conn_id="redis_default").get_conn()
        client.set(SMOKE_KEY, token)
        stored = client.get(SMOKE_KEY)
        if stored is None or stored.decode() != token:
            raise RuntimeError(f"Redis returned {stored!r} for {SMOKE_KEY}, expected {token!r}")
        return token

    redis_roundtrip(kafka_roundtrip())


clickstream_smoke()
