"""Redis, not the checkpoint folder, decides what the streaming job has counted (issue 31's five faults).

Each test runs the streaming operator as a task does (bounded: the job drains the topic and stops, as
``clickstream_pipeline``'s ``stream_clicks``), with real Kafka, Spark and Redis, does something to the
checkpoint or the topic between runs, and compares every Redis cell with the ground truth of everything
sent: 0 cells may differ.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import spark_jobs
from airflow.sdk.exceptions import TaskDeferred
from streaming_tasks import first_event, handle_of, kill_after_batch, run_bounded

from clickstream import redis_layout
from clickstream.traffic import TrafficConfig, ground_truth
from devstack.kafka_broker import KafkaBroker
from devstack.ports import free_port
from devstack.processes import running

pytestmark = pytest.mark.integration

JARS = ",".join(sorted(str(p) for p in spark_jobs.JARS_DIR.glob("*.jar")))
START_MS = 1_765_000_000_000


def burst(seed: int, minute: int) -> TrafficConfig:
    """Traffic whose events start ``minute`` minutes after the others': bursts follow each other in event time."""
    return TrafficConfig(seed=seed, start_ms=START_MS + minute * 60_000, events_per_second=50.0, malformed_share=0.01)


def topics(topic_factory, name: str, partitions: int) -> tuple[str, str]:
    """An events topic with the pipeline's ACLs, and its dead-letter topic."""
    topic = topic_factory(name, partitions=partitions)
    return topic, topic_factory(f"{name}-dlq", partitions=1, dead_letters_of=topic)


def truth_of(*sent: tuple[TrafficConfig, int]) -> dict:
    total: Counter = Counter()
    for config, count in sent:
        total.update(ground_truth(config, count).window_counts)
    return dict(total)


def differing(redis_client, truth: dict) -> int:
    cells = spark_jobs.redis_counts(redis_client)
    return sum(1 for key in set(cells) | set(truth) if cells.get(key) != truth.get(key))


def report(case: str, did: str, truth: dict, redis_client) -> None:
    cells = spark_jobs.redis_counts(redis_client)
    print(f"\n| {case} | {did} | {sum(truth.values())} | {sum(cells.values())} | {differing(redis_client, truth)} |")


def said(op, start: str) -> list[str]:
    """What the operator logged of the checkpoint at its launches, the lines that start with ``start``."""
    return [line for line in op.start_notes if line.startswith(start)]


@pytest.fixture
def stream(operators, tmp_path):
    """A bounded streaming operator on ``topic`` (a fresh operator per call, as each task try gets)."""

    def make(topic: str, dlq: str, **kwargs):
        kwargs.setdefault("checkpoint_dir", str(tmp_path / "checkpoint"))
        return operators(
            application=str(spark_jobs.STREAMING_APP),
            mode="bounded",
            topic=topic,
            dead_letter_topic=dlq,
            log_dir=str(tmp_path / "logs"),
            watermark="1 hour",  # the bursts are minutes apart in event time: nothing here is late
            poll_interval_s=0.5,
            max_restarts=1,
            jars=JARS,
            **kwargs,
        )

    return make


def test_a_checkpoint_deleted_while_the_job_is_stopped_resumes_from_redis(
    kafka_broker, topic_factory, redis_client, operators, stream, tmp_path
):
    """Events in Kafka both counted (before the deletion) and not yet counted: each counts once."""
    topic, dlq = topics(topic_factory, "ckpt-deleted", 2)
    producer = kafka_broker.client_config("producer")
    first, second = burst(41, 0), burst(42, 5)
    spark_jobs.produce(producer, topic, first, 2000)
    context = {"run_id": "manual__deleted"}
    run_bounded(stream(topic, dlq), context, operators.handles)
    assert differing(redis_client, truth_of((first, 2000))) == 0

    spark_jobs.produce(producer, topic, second, 2000)
    shutil.rmtree(tmp_path / "checkpoint")
    op = stream(topic, dlq)
    run_bounded(op, context, operators.handles)
    lines = said(op, "Streaming job: no checkpoint at")
    print("\n" + "\n".join(lines))
    assert len(lines) == 1 and "starting from the offsets Redis has counted" in lines[0]
    truth = truth_of((first, 2000), (second, 2000))
    report("checkpoint deleted while stopped", "started from Redis's offsets", truth, redis_client)
    assert differing(redis_client, truth) == 0


def test_a_checkpoint_lost_with_the_job_running_is_recounted_from_redis(
    kafka_broker, topic_factory, redis_client, operators, stream, tmp_path
):
    """SIGKILL mid-stream, then the checkpoint folder is gone: the restart starts where Redis's counts end."""
    topic, dlq = topics(topic_factory, "ckpt-lost", 2)
    config = burst(43, 0)
    spark_jobs.produce(kafka_broker.client_config("producer"), topic, config, 8000)
    op = stream(topic, dlq, max_offsets_per_trigger=1000)
    context = {"run_id": "manual__lost"}
    first, died = kill_after_batch(op, context, operators.handles, redis_client, 2)
    shutil.rmtree(tmp_path / "checkpoint")
    counted = redis_layout.read_counted_offsets(redis_client, _topic_id(kafka_broker, topic))
    assert 2900 <= sum(counted.values()) < 8000  # batches 0-2 at least were counted before the kill

    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, died, **first.kwargs)
    operators.handles.append(handle_of(second.value))
    finished = first_event(second.value)
    assert finished["status"] == "finished", finished
    op.execute_complete(context, finished, **second.value.kwargs)
    lines = said(op, "Streaming job: no checkpoint at")  # the first launch's, then the relaunch's
    print("\n" + "\n".join(lines))
    assert len(lines) == 2 and "starting from the offsets Redis has counted" in lines[1]
    truth = truth_of((config, 8000))
    report("checkpoint lost with the job running", "restarted from Redis's offsets", truth, redis_client)
    assert differing(redis_client, truth) == 0


def test_a_topic_deleted_and_recreated_sets_the_old_checkpoint_aside(
    kafka_broker, topic_factory, redis_client, operators, stream, tmp_path
):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, dlq = topics(topic_factory, "recreated", 2)
    producer = kafka_broker.client_config("producer")
    old, new = burst(44, 0), burst(45, 5)
    spark_jobs.produce(producer, topic, old, 3000)
    context = {"run_id": "manual__recreated"}
    run_bounded(stream(topic, dlq), context, operators.handles)
    old_id = _topic_id(kafka_broker, topic)

    admin = AdminClient(kafka_broker.client_config("ops"))
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 60
    while True:  # the name is free again once the deletion has gone through the controller
        try:
            admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
            break
        except Exception:
            assert time.monotonic() < deadline, f"{topic} could not be re-created within 60 s"
            time.sleep(0.5)
    spark_jobs.produce(producer, topic, new, 1000)  # offsets from 0 again, under a new topic id
    assert _topic_id(kafka_broker, topic) != old_id

    op = stream(topic, dlq)
    run_bounded(op, context, operators.handles)
    lines = said(op, "Streaming job: set aside the checkpoint")
    print("\n" + "\n".join(lines))
    assert len(lines) == 1 and f"with id {old_id}" in lines[0] and "(deleted and re-created)" in lines[0]
    aside = list(tmp_path.glob("checkpoint.set-aside-*"))
    assert len(aside) == 1 and (aside[0] / "counts" / "commits").is_dir()  # renamed, never deleted
    truth = truth_of((old, 3000), (new, 1000))
    report("topic deleted and re-created", "set the checkpoint aside, started from earliest", truth, redis_client)
    assert differing(redis_client, truth) == 0


def test_a_checkpoint_restored_from_a_copy_ten_batches_old_counts_nothing_twice(
    kafka_broker, topic_factory, redis_client, operators, stream, tmp_path
):
    """The restored checkpoint plans its batches anew (here without the batch size limit, so its first batch
    spans everything since): the offsets Redis counted, not the batch ids, decide what is skipped."""
    topic, dlq = topics(topic_factory, "restored", 1)
    producer = kafka_broker.client_config("producer")
    sent = [(burst(46, 0), 1000), (burst(47, 2), 5000), (burst(48, 8), 1000)]
    context = {"run_id": "manual__restored"}
    spark_jobs.produce(producer, topic, *sent[0])
    run_bounded(stream(topic, dlq, max_offsets_per_trigger=500), context, operators.handles)  # batches 0-1
    shutil.copytree(tmp_path / "checkpoint", tmp_path / "copy")
    spark_jobs.produce(producer, topic, *sent[1])
    run_bounded(stream(topic, dlq, max_offsets_per_trigger=500), context, operators.handles)  # batches 2-11
    commits = sorted(
        int(p.name) for p in (tmp_path / "checkpoint" / "counts" / "commits").iterdir() if p.name.isdigit()
    )
    assert commits[-1] == 11

    shutil.rmtree(tmp_path / "checkpoint")
    shutil.copytree(tmp_path / "copy", tmp_path / "checkpoint")
    spark_jobs.produce(producer, topic, *sent[2])
    op = stream(topic, dlq)
    run_bounded(op, context, operators.handles)
    lines = said(op, "Streaming job: resuming from the checkpoint")
    print("\n" + "\n".join(lines))
    assert len(lines) == 1 and "the checkpoint is behind what Redis has counted (0:6000)" in lines[0]
    log = Path(operators.handles[-1].log_path).read_text()
    assert "Redis has counted " + topic + " below offsets 0:6000 already" in log
    truth = truth_of(*sent)
    report("checkpoint restored from 10 batches earlier", "kept it; the sink skipped offsets 1000-5999", truth,
           redis_client)  # fmt: skip
    assert differing(redis_client, truth) == 0


def test_switching_kafka_clusters_and_back_resumes_each_where_it_was(
    kafka_broker,
    topic_factory,
    redis_client,
    operators,
    stream,
    airflow_env,
    monkeypatch,
    tmp_path,
):
    """The topology switch: the single node and another Kafka (its own cluster id, the same topic name), one
    Redis, the default checkpoint paths. The first run writes the old default (one folder for every cluster),
    as a pipeline set up before checkpoints were kept per cluster."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, dlq = topics(topic_factory, "switch", 2)
    other = KafkaBroker(tmp_path / "kafka-b", free_port(), free_port(), free_port())
    other.prepare()
    home = Path(os.environ["AIRFLOW_HOME"]) / "clickstream"
    with running("kafka-b", other.command(), other.healthy, tmp_path / "kafka-b.log", timeout=90):
        other.ensure_principals(events=topic, dead_letters=dlq)
        admin = AdminClient(other.client_config("ops"))
        for name, partitions in ((topic, 2), (dlq, 1)):
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        brokers = {"single": kafka_broker, "other": other}
        ids = {name: _cluster_id(broker, topic) for name, broker in brokers.items()}
        assert ids["single"] != ids["other"]
        sent: list[tuple[TrafficConfig, int]] = []
        context = {"run_id": "manual__switch"}

        def run_on(name: str, config: TrafficConfig, **kwargs) -> list[str]:
            for key, value in brokers[name].airflow_connections().items():
                monkeypatch.setenv(key, value)
            spark_jobs.produce(brokers[name].client_config("producer"), topic, config, 1500)
            sent.append((config, 1500))
            op = stream(topic, dlq, **kwargs)
            run_bounded(op, context, operators.handles)
            print(f"\n[{name}] " + "\n".join(op.start_notes))
            truth = truth_of(*sent)
            report(f"on {name} ({ids[name]})", op.start_notes[-1][14:80], truth, redis_client)
            assert differing(redis_client, truth) == 0
            return op.start_notes

        legacy = home / f"checkpoint-{topic}"
        run_on("single", burst(50, 0), checkpoint_dir=str(legacy))  # the old default path
        said = run_on("other", burst(51, 3), checkpoint_dir=None)
        assert legacy.is_dir()  # the single node's: left where it was
        assert "no checkpoint at" in said[-1] and "Redis holds no offsets for" in said[-1]
        said = run_on("single", burst(52, 6), checkpoint_dir=None)
        assert any(f"Moved the checkpoint {legacy}" in line for line in said)
        assert "resuming from the checkpoint at offsets" in said[-1] and "where Redis's counts end" in said[-1]
        said = run_on("other", burst(53, 9), checkpoint_dir=None)
        assert "resuming from the checkpoint" in said[-1] and "where Redis's counts end" in said[-1]
        assert sorted(p.name for p in (home / "checkpoints").iterdir()) >= sorted(ids.values())


def _topic_state(broker: KafkaBroker, topic: str):
    from confluent_kafka.admin import AdminClient

    from clickstream.kafka_topic_state import read_topic_state

    return read_topic_state(AdminClient(broker.client_config("ops")), topic)


def _topic_id(broker: KafkaBroker, topic: str) -> str:
    return _topic_state(broker, topic).topic_id


def _cluster_id(broker: KafkaBroker, topic: str) -> str:
    return _topic_state(broker, topic).cluster_id
