from __future__ import annotations

from types import SimpleNamespace

import pytest

from clickstream.hooks.kafka_topics import KafkaTopicsHook, TopicSpec


def metadata(partitions: int, replicas: int = 1) -> SimpleNamespace:
    return SimpleNamespace(partitions={p: SimpleNamespace(replicas=list(range(replicas))) for p in range(partitions)})


SPEC = TopicSpec("events", partitions=3, retention_ms=1000, cleanup_policy="delete")
MATCHING = {"retention.ms": "1000", "cleanup.policy": "delete"}


def test_a_matching_topic_has_no_differences():
    assert KafkaTopicsHook().differences(SPEC, metadata(3), MATCHING) == []


def test_each_difference_names_both_values_and_a_fix():
    diffs = KafkaTopicsHook().differences(
        SPEC, metadata(2, replicas=2), {"retention.ms": "5000", "cleanup.policy": "compact"}
    )
    assert len(diffs) == 4
    assert diffs[0] == (
        "partitions: topic has 2, asked for 3 (pass allow_partition_increase=True to add partitions "
        "(keys will map to new partitions))"
    )
    assert "replication factor: topic has [2], asked for 1" in diffs[1]
    assert "retention.ms: topic has 5000, asked for 1000" in diffs[2]
    assert "--add-config retention.ms=1000" in diffs[2]
    assert "cleanup.policy: topic has compact, asked for delete" in diffs[3]


def test_fewer_partitions_than_the_topic_has_cannot_be_fixed_by_kafka():
    (diff,) = KafkaTopicsHook().differences(SPEC, metadata(6), MATCHING)
    assert "Kafka cannot remove partitions: ask for partitions=6" in diff


@pytest.mark.parametrize(
    "bad", [{"name": ""}, {"name": "t", "partitions": 0}, {"name": "t", "cleanup_policy": "forever"}]
)
def test_invalid_specs_are_refused(bad):
    with pytest.raises(ValueError):
        TopicSpec(**bad)


def test_bootstrap_servers_come_from_the_connection_extra(monkeypatch):
    extra = '{"bootstrap.servers": "broker-1:9092,broker-2:9092"}'
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_EVENTS", f'{{"conn_type": "kafka", "extra": {extra}}}')
    assert KafkaTopicsHook("kafka_events").bootstrap_servers() == "broker-1:9092,broker-2:9092"


def test_a_connection_without_bootstrap_servers_says_where_to_set_them(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_EMPTY", '{"conn_type": "kafka", "extra": {"group.id": "g"}}')
    with pytest.raises(AirflowFailException, match=r"Kafka connection 'kafka_empty' has no 'bootstrap\.servers'"):
        KafkaTopicsHook("kafka_empty").bootstrap_servers()
