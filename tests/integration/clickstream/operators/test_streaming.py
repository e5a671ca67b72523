"""The streaming operator and its trigger, with a real Spark job that is killed, stalled and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import spark_jobs
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from clickstream import redis_layout
from clickstream.hooks.spark_streaming import SparkJobHandle, job_process, kill_job
from clickstream.operators.streaming import ClickstreamStreamingOperator
from clickstream.traffic import TrafficConfig, ground_truth

pytestmark = pytest.mark.integration

JARS = ",".join(sorted(str(p) for p in spark_jobs.JARS_DIR.glob("*.jar")))


def first_event(deferred: TaskDeferred, timeout: float = 240) -> dict:
    async def run() -> dict:
        async for event in deferred.trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def handle_of(deferred: TaskDeferred) -> SparkJobHandle:
    return SparkJobHandle.from_dict(deferred.trigger.job)


def wait_for_batch(redis_client, handle: SparkJobHandle, batch_id: int, timeout: float = 180) -> None:
    """Until this launch's counts query has committed ``batch_id``."""
    key = redis_layout.progress_key(redis_layout.COUNTS_QUERY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}
        if int(progress.get("started_ms", 0)) >= handle.launched_ms and int(progress.get("batch_id", -1)) >= batch_id:
            return
        assert job_process(handle).alive, Path(handle.log_path).read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no batch {batch_id} within {timeout}s")


@pytest.fixture
def operators(airflow_env):
    """Builds operators and kills whatever job they left running."""
    made: list[ClickstreamStreamingOperator] = []
    handles: list[SparkJobHandle] = []

    def make(**kwargs) -> ClickstreamStreamingOperator:
        op = ClickstreamStreamingOperator(task_id="stream_clicks", **kwargs)
        made.append(op)
        return op

    make.handles = handles  # type: ignore[attr-defined]
    yield make
    for handle in handles:
        kill_job(handle)


def test_a_killed_and_a_stalled_job_are_restarted_from_the_checkpoint_and_count_exactly_once(
    kafka_broker, topic_factory, redis_client, operators, tmp_path
):
    topic, dlq = topic_factory("op-events", partitions=2), topic_factory("op-dlq", partitions=1)
    config = TrafficConfig(seed=11, start_ms=1_765_000_000_000, events_per_second=400.0, malformed_share=0.01)
    spark_jobs.produce(kafka_broker.bootstrap_servers, topic, config, 24_000)
    op = operators(
        application=str(spark_jobs.STREAMING_APP),
        mode="bounded",
        topic=topic,
        dead_letter_topic=dlq,
        checkpoint_dir=str(tmp_path / "checkpoint"),
        log_dir=str(tmp_path / "logs"),
        max_offsets_per_trigger=1000,  # many small batches, so there is a "mid-stream" to interrupt
        stall_timeout_s=15,
        poll_interval_s=0.5,
        max_restarts=2,
        jars=JARS,
    )
    context = {"run_id": "manual__test"}

    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    job = handle_of(first.value)
    operators.handles.append(job)
    wait_for_batch(redis_client, job, 2)
    os.killpg(job.pid, signal.SIGKILL)
    died = first_event(first.value)
    assert died["status"] == "died", died

    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, died, **first.value.kwargs)
    assert second.value.kwargs == {"restarts": 1}
    job = handle_of(second.value)
    operators.handles.append(job)
    wait_for_batch(redis_client, job, 1)
    os.killpg(job.pid, signal.SIGSTOP)  # alive, but no progress: a stall
    stalled = first_event(second.value)
    assert stalled["status"] == "stalled", stalled
    assert "reported no progress" in stalled["reason"]

    with pytest.raises(TaskDeferred) as third:
        op.execute_complete(context, stalled, **second.value.kwargs)
    assert not job_process(job).alive  # the stalled job was stopped before its replacement started
    job = handle_of(third.value)
    operators.handles.append(job)
    finished = first_event(third.value)
    assert finished["status"] == "finished", finished
    summary = op.execute_complete(context, finished, **third.value.kwargs)
    assert summary["restarts"] == 2

    truth = ground_truth(config, 24_000)
    assert spark_jobs.redis_counts(redis_client, truth) == dict(truth.window_counts)


def test_a_job_that_keeps_failing_fails_the_task_with_its_own_error(
    kafka_broker, topic_factory, redis_client, operators, tmp_path
):
    topic = topic_factory("op-broken", partitions=1)
    op = operators(
        application=str(spark_jobs.STREAMING_APP),
        topic=topic,
        checkpoint_dir=str(tmp_path / "checkpoint"),
        log_dir=str(tmp_path / "logs"),
        poll_interval_s=0.5,
        max_restarts=1,
        jars=None,  # no Kafka connector: the job cannot find its source
    )
    context = {"run_id": "manual__broken"}
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    operators.handles.append(handle_of(first.value))
    died = first_event(first.value)
    assert died["status"] == "died", died
    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, died, **first.value.kwargs)
    operators.handles.append(handle_of(second.value))
    died_again = first_event(second.value)
    with pytest.raises(AirflowException) as failure:
        op.execute_complete(context, died_again, **second.value.kwargs)
    message = str(failure.value)
    assert "the streaming job died after 1 restart(s) (max_restarts=1)" in message
    assert "Failed to find data source: kafka" in message


def test_a_long_running_job_stops_cleanly_when_asked(kafka_broker, topic_factory, redis_client, operators, tmp_path):
    topic = topic_factory("op-long", partitions=1)
    config = TrafficConfig(seed=5, start_ms=1_765_000_000_000, events_per_second=100.0)
    spark_jobs.produce(kafka_broker.bootstrap_servers, topic, config, 1000)
    op = operators(
        application=str(spark_jobs.STREAMING_APP),
        mode="long_running",
        topic=topic,
        checkpoint_dir=str(tmp_path / "checkpoint"),
        log_dir=str(tmp_path / "logs"),
        poll_interval_s=0.5,
        jars=JARS,
    )
    context = {"run_id": "manual__long"}
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    job = handle_of(first.value)
    operators.handles.append(job)
    wait_for_batch(redis_client, job, 0)
    redis_layout.request_stop(redis_client, reason="test")
    event = first_event(first.value)
    assert event["status"] == "stop_requested"
    summary = op.execute_complete(context, event, **first.value.kwargs)
    assert summary["stopped_cleanly"] is True
    assert "stopped cleanly" in Path(job.log_path).read_text()
    assert not redis_client.exists(redis_layout.CONTROL_KEY)
