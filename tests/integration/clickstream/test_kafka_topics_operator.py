"""The topic-creation operator against a real broker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from clickstream.hooks.kafka_topics import KafkaTopicsHook, KafkaUnreachable, TopicSpec
from clickstream.operators.kafka_topics import CreateClickstreamTopicsOperator

pytestmark = pytest.mark.integration

ADMIN = {"kafka_config_id": "kafka_admin"}  # the only principal that may create and alter topics


def names() -> tuple[str, str]:
    base = f"clickstream-test-events-{uuid.uuid4().hex[:8]}"  # the admin principal's ACLs cover clickstream-*
    return base, f"{base}-dlq"


def describe(topic: str) -> tuple[int, dict[str, str]]:
    hook = KafkaTopicsHook("kafka_admin")
    metadata = hook._existing([topic])[topic]
    return len(metadata.partitions), hook._configs([topic])[topic]


def test_creates_both_topics_then_is_idempotent(airflow_env):
    topic, dlq = names()
    op = CreateClickstreamTopicsOperator(
        task_id="create", topic=topic, dead_letter_topic=dlq, partitions=4, retention_ms=3_600_000, **ADMIN
    )
    assert op.execute({}) == {topic: "created", dlq: "created"}
    partitions, configs = describe(topic)
    assert partitions == 4
    assert (configs["retention.ms"], configs["cleanup.policy"]) == ("3600000", "delete")
    # The replication settings are the brokers' own: one node here (the cluster tests see 3 and 2).
    assert configs["min.insync.replicas"] == "1"
    partition_metadata = KafkaTopicsHook("kafka_admin")._existing([topic])[topic].partitions.values()
    assert {len(p.replicas) for p in partition_metadata} == {1}
    dlq_partitions, dlq_configs = describe(dlq)
    assert (dlq_partitions, dlq_configs["retention.ms"]) == (1, str(14 * 24 * 3600 * 1000))

    assert op.execute({}) == {topic: "unchanged", dlq: "unchanged"}


def test_more_in_sync_replicas_than_replicas_is_refused_before_kafka_is_asked():
    op = CreateClickstreamTopicsOperator(task_id="c", replication_factor=1, min_insync_replicas=2, **ADMIN)
    with pytest.raises(AirflowFailException, match="min_insync_replicas must be between 1 and the replication factor"):
        op.specs()
    # Only a replication factor given, on brokers whose min.insync.replicas is higher: capped at the replicas.
    single = CreateClickstreamTopicsOperator(task_id="c", replication_factor=1, **ADMIN).specs(3, 2)
    assert {(spec.replication_factor, spec.configs["min.insync.replicas"]) for spec in single} == {(1, "1")}


def test_a_mismatch_fails_saying_what_differs_and_changes_nothing(airflow_env):
    topic, dlq = names()
    CreateClickstreamTopicsOperator(
        task_id="create", topic=topic, dead_letter_topic=dlq, partitions=3, **ADMIN
    ).execute({})
    other = CreateClickstreamTopicsOperator(
        task_id="create", topic=topic, dead_letter_topic=dlq, partitions=5, retention_ms=60_000, **ADMIN
    )
    with pytest.raises(AirflowFailException) as info:
        other.execute({})
    message = str(info.value)
    assert f"topic '{topic}' exists with other settings" in message
    assert "partitions: topic has 3, asked for 5 (pass allow_partition_increase=True" in message
    assert f"retention.ms: topic has {7 * 24 * 3600 * 1000}, asked for 60000" in message
    assert describe(topic)[0] == 3


def test_partitions_grow_only_when_asked(airflow_env):
    topic, _ = names()
    CreateClickstreamTopicsOperator(task_id="c", topic=topic, dead_letter_topic=None, partitions=2, **ADMIN).execute({})
    grow = CreateClickstreamTopicsOperator(
        task_id="c", topic=topic, dead_letter_topic=None, partitions=6, allow_partition_increase=True, **ADMIN
    )
    assert grow.execute({}) == {topic: "partitions_increased"}
    assert describe(topic)[0] == 6
    assert grow.execute({}) == {topic: "unchanged"}


def test_unreachable_broker_fails_fast_with_the_address(monkeypatch, airflow_env):
    import json
    import time

    monkeypatch.setenv(
        "AIRFLOW_CONN_KAFKA_NOWHERE", json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:1"}})
    )
    started = time.monotonic()
    with pytest.raises(KafkaUnreachable, match=r"cannot reach Kafka at 127.0.0.1:1 \(connection 'kafka_nowhere'\)"):
        KafkaTopicsHook(kafka_config_id="kafka_nowhere", timeout_s=3).ensure_topics([TopicSpec("x")])
    assert time.monotonic() - started < 10


def test_a_principal_without_the_right_is_told_to_use_the_admin_connection(airflow_env, topic_factory):
    topic, dlq = names()
    producer = CreateClickstreamTopicsOperator(task_id="c", topic=topic, dead_letter_topic=dlq)  # kafka_default
    with pytest.raises(
        AirflowFailException,
        match=r"Kafka user 'producer' \(connection 'kafka_default'\) may not read the brokers' configs .*"
        r"DESCRIBE_CONFIGS on the cluster.*or pass replication_factor and min_insync_replicas",
    ):
        producer.execute({})
    existing = topic_factory("seen-by-the-producer", partitions=1)  # it may describe it, not read its configs
    check = CreateClickstreamTopicsOperator(
        task_id="c", topic=existing, dead_letter_topic=None, partitions=1, replication_factor=1, min_insync_replicas=1
    )
    with pytest.raises(AirflowFailException, match=r"may not describe the configs of .*kafka_admin manages topics"):
        check.execute({})


def test_a_spark_operator_without_the_rights_fails_before_starting_spark(airflow_env, topic_factory):
    from clickstream.operators.reconcile import ReconcileClickstreamOperator
    from clickstream.operators.streaming import ClickstreamStreamingOperator

    topic = topic_factory("op-denied", partitions=1)
    apps = Path(__file__).resolve().parents[3] / "include" / "spark"
    streaming = ClickstreamStreamingOperator(
        task_id="s", application=str(apps / "clickstream_streaming.py"), topic=topic, dead_letter_topic=f"{topic}-dlq"
    )  # kafka_default: the producer, who may write the topic but not read it
    with pytest.raises(AirflowFailException, match=r"'producer' \(connection 'kafka_default'\) may not describe topic"):
        streaming.execute({})  # the dead-letter topic: the producer may not even know it exists
    reconcile = ReconcileClickstreamOperator(
        task_id="r", application=str(apps / "clickstream_batch.py"), topic=topic, kafka_config_id="kafka_admin"
    )
    with pytest.raises(AirflowFailException, match=rf"'admin' \(connection 'kafka_admin'\) may not READ {topic}"):
        reconcile.execute({})


def test_a_wrong_password_fails_fast_saying_what_to_check(monkeypatch, airflow_env, kafka_broker):
    import json
    import time

    config = kafka_broker.client_config("admin")
    config["sasl.password"] = "not-the-password"
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_WRONG", json.dumps({"conn_type": "kafka", "extra": config}))
    started = time.monotonic()
    with pytest.raises(AirflowFailException, match=r"refused the login of 'admin'.*connection 'kafka_wrong'"):
        KafkaTopicsHook(kafka_config_id="kafka_wrong").ensure_topics([TopicSpec("clickstream-x")])
    assert time.monotonic() - started < 10
