"""ClickstreamStreamingOperator's pure decisions (the launches themselves are integration tests)."""

from __future__ import annotations

import psutil
from job_processes import handle_of, job_process

from clickstream.operators.streaming import ClickstreamStreamingOperator


def operator(**kwargs) -> ClickstreamStreamingOperator:
    return ClickstreamStreamingOperator(task_id="stream_clicks", application="clickstream_streaming.py", **kwargs)


def test_each_kafka_cluster_and_topic_gets_its_own_default_checkpoint(monkeypatch, tmp_path):
    """A checkpoint holds one cluster's offsets of one topic: a run on another topic or another Kafka (the cluster
    topology) must not go on from it, and switching back must find its own again."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    checkpoints = tmp_path / "clickstream" / "checkpoints"
    assert operator()._checkpoint("cluster-A") == str(checkpoints / "cluster-A" / "clickstream-events")
    assert operator()._checkpoint("cluster-B") == str(checkpoints / "cluster-B" / "clickstream-events")
    assert operator(topic="events-a")._checkpoint("cluster-A") == str(checkpoints / "cluster-A" / "events-a")
    assert operator(topic="events-a", checkpoint_dir="/data/ckpt")._checkpoint("cluster-A") == "/data/ckpt"
    # Where one folder served every cluster before: moved to its cluster's path when it belongs to it.
    assert operator()._legacy_checkpoint() == str(tmp_path / "clickstream" / "checkpoint")
    assert operator(topic="events-a")._legacy_checkpoint() == str(tmp_path / "clickstream" / "checkpoint-events-a")


def test_a_task_killed_while_it_launches_stops_the_job_it_launched():
    """The worker-side on_kill: the job this process launched gets SIGTERM (here it stops at once)."""
    proc = job_process(ignores_sigterm=False)
    task = operator()
    task.on_kill()  # nothing launched yet: nothing to stop
    assert proc.poll() is None
    task._job = handle_of(proc)  # as launch() keeps it
    task.on_kill()
    assert not psutil.pid_exists(proc.pid)
    assert proc.stdout is not None and proc.stdout.read() == "term\n"
