"""The streaming operator and its trigger, with a real Spark job that is killed, stalled and restarted."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import spark_jobs
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
from airflow.sdk.execution_time.context import VariableAccessor
from mail_sink import mail_sink, wait_for_mail
from streaming_tasks import first_event, handle_of, kill_after_batch, wait_for_batch

from clickstream import redis_layout
from clickstream.notifications.task_failure import task_failure_email
from clickstream.traffic import TrafficConfig, ground_truth
from devstack.monitoring import MonitoringPorts, StatsdExporter
from devstack.paths import DEPS
from devstack.ports import free_port
from devstack.processes import running

pytestmark = pytest.mark.integration

JARS = ",".join(sorted(str(p) for p in spark_jobs.JARS_DIR.glob("*.jar")))


def test_a_killed_and_a_stalled_job_are_restarted_from_the_checkpoint_and_count_exactly_once(
    kafka_broker, topic_factory, redis_client, operators, tmp_path
):
    topic = topic_factory("op-events", partitions=2)
    dlq = topic_factory("op-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(seed=11, start_ms=1_765_000_000_000, events_per_second=400.0, malformed_share=0.01)
    spark_jobs.produce(kafka_broker.client_config("producer"), topic, config, 24_000)
    op = operators(
        application=str(spark_jobs.STREAMING_APP),
        mode="bounded",
        topic=topic,
        dead_letter_topic=dlq,
        checkpoint_dir=str(tmp_path / "checkpoint"),
        log_dir=str(tmp_path / "logs"),
        max_offsets_per_trigger=1000,  # many small batches, so there is a "mid-stream" to interrupt
        stall_timeout_s=30,  # a relaunch's first batch gets startup_timeout_s (300 s) instead
        poll_interval_s=0.5,
        max_restarts=2,
        jars=JARS,
    )
    context = {"run_id": "manual__test"}
    first, died = kill_after_batch(op, context, operators.handles, redis_client, 2)

    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(context, died, **first.kwargs)
    assert second.value.kwargs["restarts"] == 1
    assert second.value.kwargs["failed_batches"][0] >= 3  # killed after batch 2 committed
    job = handle_of(second.value)
    operators.handles.append(job)
    wait_for_batch(redis_client, job, 1)
    os.killpg(job.pid, signal.SIGSTOP)  # alive, but no progress: a stall
    stalled = first_event(second.value)
    assert stalled["status"] == "stalled", stalled
    assert "reported no progress" in stalled["reason"]

    with pytest.raises(TaskDeferred) as third:
        op.execute_complete(context, stalled, **second.value.kwargs)
    assert not job.process().alive  # the stalled job was stopped before its replacement started
    job = handle_of(third.value)
    operators.handles.append(job)
    finished = first_event(third.value)
    assert finished["status"] == "finished", finished
    summary = op.execute_complete(context, finished, **third.value.kwargs)
    assert summary["restarts"] == 2

    truth = ground_truth(config, 24_000)
    assert spark_jobs.redis_counts(redis_client) == dict(truth.window_counts)


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
    # The restart is in Redis, for the serving API and the Airflow UI's view.
    supervisor = {k.decode(): v.decode() for k, v in redis_client.hgetall(redis_layout.SUPERVISOR_KEY).items()}
    assert (supervisor["restarts"], supervisor["run_id"]) == ("1", "manual__broken")
    assert supervisor["last_restart_reason"].startswith("died")
    died_again = first_event(second.value)
    with pytest.raises(AirflowException) as failure:
        op.execute_complete(context, died_again, **second.value.kwargs)
    message = str(failure.value)
    assert "the streaming job died after 1 restart(s) (max_restarts=1)" in message
    assert "Failed to find data source: kafka" in message


@pytest.fixture
def statsd_exporter(tmp_path, monkeypatch):
    """A real statsd_exporter with the stack's mapping, and Airflow's metrics client pointed at it, set up as
    Airflow's task runner sets it up. Yields the exporter's /metrics URL."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger
    from airflow.sdk.observability.metrics import stats_utils

    ports = MonitoringPorts(statsd_exporter=free_port(), statsd=free_port())
    exporter = StatsdExporter(ports, DEPS)
    for name, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(ports.statsd),
                        "STATSD_PREFIX": "airflow"}.items():  # fmt: skip
        monkeypatch.setenv(f"AIRFLOW__METRICS__{name}", value)
    with running("statsd-exporter", exporter.command(), exporter.healthy, tmp_path / "statsd.log"):
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        try:
            yield f"http://127.0.0.1:{ports.statsd_exporter}/metrics"
        finally:
            stats.initialize(factory=NoStatsLogger, export_legacy_names=False)


def scraped(url: str, metric: str) -> float | None:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == metric]
    return values[0] if values else None


def test_events_deleted_before_they_were_counted_fail_the_task_at_once_with_the_command_that_fixes_it(
    kafka_broker, topic_factory, redis_client, operators, tmp_path
):
    """Kafka deleted records the checkpoint had not read yet (retention ran ahead of a stopped job): no launch
    can count them, so none is made; the task fails saying what is lost, and the fix it names works."""
    import shutil

    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    from streaming_tasks import run_bounded

    from clickstream.kafka_topic_state import read_topic_state

    topic = topic_factory("op-lost", partitions=1)
    first, second = (TrafficConfig(seed=seed, start_ms=1_765_000_000_000) for seed in (21, 22))
    spark_jobs.produce(kafka_broker.client_config("producer"), topic, first, 500)
    checkpoint = tmp_path / "checkpoint"
    settings = {
        "application": str(spark_jobs.STREAMING_APP),
        "topic": topic,
        "checkpoint_dir": str(checkpoint),
        "log_dir": str(tmp_path / "logs"),
        "watermark": "1 hour",
        "poll_interval_s": 0.5,
        "jars": JARS,
    }
    context = {"run_id": "manual__lost"}
    run_bounded(operators(**settings), context, operators.handles)  # offsets 0-499
    spark_jobs.produce(kafka_broker.client_config("producer"), topic, second, 500)
    admin = AdminClient(kafka_broker.client_config("ops"))
    for future in admin.delete_records([TopicPartition(topic, 0, 750)]).values():
        future.result(30)  # offsets 500-749 are gone before the job read them

    launched = len(operators.handles)
    with pytest.raises(AirflowFailException) as failure:
        operators(**settings).execute(context)
    assert len(operators.handles) == launched  # no job was launched
    message = str(failure.value)
    print(f"\nthe task's failure: {message}")
    topic_id = read_topic_state(admin, topic).topic_id
    assert f"goes on from offsets 0:500 of topic {topic} (id {topic_id})" in message
    assert "Kafka holds them only from 0:750 (deleted by retention before they were counted)" in message
    fix = f"redis-cli --user writer HSET clickstream:offsets:{topic_id} 0 750"
    assert f"mv {checkpoint} {checkpoint}.lost" in message and fix in message

    shutil.move(checkpoint, f"{checkpoint}.lost")  # the fix, as the message gives it
    redis_client.hset(f"clickstream:offsets:{topic_id}", "0", 750)
    run_bounded(operators(**settings), context, operators.handles)
    kept = Counter(ground_truth(first, 500).window_counts)
    kept.update(ground_truth(second, 500).window_counts)
    kept.subtract(ground_truth(second, 250).window_counts)  # the second burst's first 250 were deleted
    assert spark_jobs.redis_counts(redis_client) == {cell: n for cell, n in kept.items() if n}


def test_a_batch_that_fails_after_every_restart_fails_the_task_naming_it_counts_the_restarts_and_emails(
    kafka_broker, topic_factory, redis_client, operators, statsd_exporter, airflow_env, monkeypatch, tmp_path
):
    """Redis refuses the job's script (its user lost the right): the next micro-batch fails on every launch,
    and restarting cannot help."""
    topic = topic_factory("op-refused", partitions=1)
    spark_jobs.produce(
        kafka_broker.client_config("producer"), topic, TrafficConfig(seed=21, start_ms=1_765_000_000_000), 500
    )
    settings = {
        "application": str(spark_jobs.STREAMING_APP),
        "topic": topic,
        "checkpoint_dir": str(tmp_path / "checkpoint"),
        "log_dir": str(tmp_path / "logs"),
        "poll_interval_s": 0.5,
        "max_restarts": 1,
        "jars": JARS,
    }
    context = {"run_id": "manual__refused"}
    op = operators(**settings)
    with pytest.raises(TaskDeferred) as first:
        op.execute(context)
    operators.handles.append(handle_of(first.value))
    finished = first_event(first.value)
    assert op.execute_complete(context, finished, **first.value.kwargs)["status"] == "finished"  # offsets 0-499

    spark_jobs.produce(
        kafka_broker.client_config("producer"), topic, TrafficConfig(seed=22, start_ms=1_765_000_000_000), 500
    )
    redis_client.execute_command("ACL", "SETUSER", "writer", "-eval")
    try:
        op = operators(**settings)
        with pytest.raises(TaskDeferred) as second:
            op.execute(context)
        operators.handles.append(handle_of(second.value))
        failed = first_event(second.value)
        assert failed["status"] in ("failed", "died"), failed
        with pytest.raises(TaskDeferred) as third:
            op.execute_complete(context, failed, **second.value.kwargs)
        operators.handles.append(handle_of(third.value))
        failed_again = first_event(third.value)
        with pytest.raises(AirflowException) as failure:
            op.execute_complete(context, failed_again, **third.value.kwargs)
    finally:
        redis_client.execute_command("ACL", "SETUSER", "writer", "+eval")

    message = str(failure.value)
    print(f"\nthe task's failure: {message[:1500]}")
    assert f"after 1 restart(s) (max_restarts=1) on micro-batch 1 ({topic}[0] offsets 500-999)" in message
    assert "where each of its 2 launches failed" in message
    assert "NoPermissionError: this user has no permissions to run the 'eval' command" in message.splitlines()[0]
    assert scraped(statsd_exporter, "clickstream_streaming_restarts_total") == 1

    # What the DAGs' on_failure_callback makes of this failure, through smtp_default to a real SMTP sink.
    with mail_sink(tmp_path, airflow_env) as (env, maildir):
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", env["AIRFLOW_CONN_SMTP_DEFAULT"])
        monkeypatch.setenv("AIRFLOW_VAR_CLICKSTREAM_SLA_EMAIL_TO", env["AIRFLOW_VAR_CLICKSTREAM_SLA_EMAIL_TO"])
        ti = SimpleNamespace(dag_id="clickstream_streaming", task_id="stream_clicks", run_id="manual__refused",
                             try_number=3, log_url="http://localhost:8080/dags/clickstream_streaming/runs")  # fmt: skip
        task_failure_email()({"ti": ti, "exception": failure.value, "var": {"value": VariableAccessor(False)}})
        messages = wait_for_mail(maildir)
    assert len(messages) == 1
    mail = messages[0]
    body = mail.get_body(preferencelist=("html",)).get_content()
    print(f"the email: {mail['Subject']} to {mail['To']}\n{body[:1500]}")
    assert mail["Subject"] == "[Airflow] clickstream_streaming.stream_clicks failed in run manual__refused"
    assert mail["To"] == "on-call@clickstream.local"
    assert f"on micro-batch 1 ({topic}[0] " in body
    assert "NoPermissionError: this user has no permissions to run the" in body


def test_a_long_running_job_stops_cleanly_when_asked(kafka_broker, topic_factory, redis_client, operators, tmp_path):
    topic = topic_factory("op-long", partitions=1)
    config = TrafficConfig(seed=5, start_ms=1_765_000_000_000, events_per_second=100.0)
    spark_jobs.produce(kafka_broker.client_config("producer"), topic, config, 1000)
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
