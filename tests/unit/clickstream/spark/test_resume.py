"""How a streaming job starts, from its checkpoint, the broker and what Redis has counted (pure decisions)."""

from __future__ import annotations

import json

import pytest

from clickstream.kafka_topic_state import TopicState
from clickstream.spark.checkpoint import Origin
from clickstream.spark.resume import FRESH, KEEP, SET_ASIDE, CannotResume, foreign_reason, plan_start

TOPIC = TopicState("cluster-A", "clickstream-events", "id-2", {0: (0, 900), 1: (0, 800)})
HERE = Origin("cluster-A", "clickstream-events", "id-2")
CHECKPOINT = "/ckpt"


def position(p0: int, p1: int) -> dict:
    return {"clickstream-events": {"0": p0, "1": p1}}


def plan(origin=HERE, at=None, counted=None, topic=TOPIC, starting="earliest"):
    return plan_start(CHECKPOINT, topic, origin, at, counted or {}, starting)


def test_no_checkpoint_starts_where_redis_counts_end_and_names_every_partition():
    started = plan(origin=None, counted={0: 500})
    assert started.action == FRESH
    # Partition 1 was never counted: Spark wants every partition named, -2 is its earliest.
    assert json.loads(started.starting_offsets) == {"clickstream-events": {"0": 500, "1": -2}}
    assert "starting from the offsets Redis has counted (0:500)" in started.summary


def test_no_checkpoint_and_nothing_counted_starts_from_the_given_offsets():
    started = plan(origin=None, starting="latest")
    assert (started.action, started.starting_offsets) == (FRESH, "latest")
    assert "Redis holds no offsets for topic clickstream-events (id id-2) on Kafka cluster cluster-A" in started.summary


def test_a_checkpoint_of_another_cluster_is_set_aside_and_the_job_starts_from_redis():
    started = plan(origin=Origin("cluster-B", "clickstream-events", "id-9"), at=position(40885, 0), counted={0: 300})
    assert started.action == SET_ASIDE
    assert json.loads(started.starting_offsets) == {"clickstream-events": {"0": 300, "1": -2}}
    assert started.summary.startswith(
        "set aside the checkpoint /ckpt: it was written against Kafka cluster cluster-B, and the broker is cluster "
        "cluster-A; starting from the offsets Redis has counted"
    )


def test_a_checkpoint_of_a_deleted_and_recreated_topic_is_set_aside():
    started = plan(origin=Origin("cluster-A", "clickstream-events", "id-1"), at=position(10, 10))
    assert started.action == SET_ASIDE
    assert "with id id-1, and clickstream-events now has id id-2 (deleted and re-created)" in started.summary
    assert started.starting_offsets == "earliest"  # Redis has counted nothing of id-2


def test_without_an_origin_file_offsets_past_the_broker_give_a_foreign_checkpoint_away():
    assert "past the 900 the broker holds" in foreign_reason(TOPIC, None, position(40885, 0))
    assert "not of clickstream-events" in foreign_reason(TOPIC, None, {"other": {"0": 1}})
    unknown_partition = {"clickstream-events": {"7": 1}}
    assert "partition 7, which clickstream-events does not have" in foreign_reason(TOPIC, None, unknown_partition)
    assert foreign_reason(TOPIC, None, position(900, 0)) is None  # a checkpoint from before origin files: kept


def test_a_matching_checkpoint_is_kept_and_its_relation_to_redis_said():
    assert plan(at=position(500, 400), counted={0: 500, 1: 400}).summary.endswith("where Redis's counts end")
    behind = plan(at=position(100, 400), counted={0: 500, 1: 400})
    assert behind.action == KEEP and "behind what Redis has counted (0:500, 1:400): the job skips" in behind.summary
    ahead = plan(at=position(700, 400), counted={0: 500, 1: 400})
    assert ahead.action == KEEP and "it came back older, and the job recounts the difference" in ahead.summary


def test_a_checkpoint_behind_kafkas_retention_is_set_aside_when_redis_counted_past_it():
    topic = TopicState("cluster-A", "clickstream-events", "id-2", {0: (600, 900), 1: (0, 800)})
    started = plan(topic=topic, at=position(100, 400), counted={0: 700, 1: 400})
    assert started.action == SET_ASIDE
    assert "goes on from offsets 0:100, which Kafka no longer holds" in started.summary


def test_events_neither_counted_nor_held_by_kafka_fail_at_once_with_the_fix():
    topic = TopicState("cluster-A", "clickstream-events", "id-2", {0: (750, 900), 1: (0, 800)})
    with pytest.raises(CannotResume) as stale:
        plan(topic=topic, at=position(500, 400), counted={0: 500, 1: 400})
    message = str(stale.value)
    assert "Kafka holds them only from 0:750 (deleted by retention before they were counted)" in message
    assert "mv /ckpt /ckpt.lost" in message
    assert "redis-cli --user writer HSET clickstream:offsets:id-2 0 750 1 400" in message
    with pytest.raises(CannotResume) as fresh:
        plan(origin=None, topic=topic, counted={0: 500})
    assert "Kafka no longer holds partition 0 offsets 500-749" in str(fresh.value)
    assert "HSET clickstream:offsets:id-2 0 750" in str(fresh.value)


def test_redis_past_the_end_of_the_topic_fails_at_once():
    with pytest.raises(CannotResume, match="past what the broker holds"):
        plan(origin=None, counted={0: 5000})
