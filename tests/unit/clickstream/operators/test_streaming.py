"""ClickstreamStreamingOperator's pure decisions (the launches themselves are integration tests)."""

from __future__ import annotations

from clickstream.operators.streaming import ClickstreamStreamingOperator


def operator(**kwargs) -> ClickstreamStreamingOperator:
    return ClickstreamStreamingOperator(task_id="stream_clicks", application="clickstream_streaming.py", **kwargs)


def test_each_topic_gets_its_own_default_checkpoint(monkeypatch, tmp_path):
    """A checkpoint holds one topic's offsets; a run on another topic must not try to go on from it."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert operator()._checkpoint() == str(tmp_path / "clickstream" / "checkpoint")
    assert operator(topic="events-a")._checkpoint() == str(tmp_path / "clickstream" / "checkpoint-events-a")
    assert operator(topic="events-a")._checkpoint() != operator(topic="events-b")._checkpoint()
    assert operator(topic="events-a", checkpoint_dir="/data/ckpt")._checkpoint() == "/data/ckpt"
