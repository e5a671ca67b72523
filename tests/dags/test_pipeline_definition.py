"""clickstream_pipeline as the scheduler sees it: its five tasks in order, its params and its SLA alert."""

from __future__ import annotations

import runpy
import sys
from datetime import timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

DAG_FILE = Path(__file__).resolve().parents[2] / "dags/clickstream_pipeline.py"


def load(argv: list[str], monkeypatch) -> object:
    monkeypatch.setattr(sys, "argv", argv)
    return runpy.run_path(str(DAG_FILE))["dag"]


def test_the_tasks_run_in_the_seeds_order_with_the_streaming_task_in_between(airflow_env, monkeypatch):
    dag = load(["airflow", "dag-processor"], monkeypatch)
    order = ["create_kafka_topic", "start_producer", "stream_clicks", "run_spark_batch", "verify_redis"]
    assert [t.task_id for t in dag.topological_sort()] == order
    assert {"events", "rate", "watermark", "freshness_s"} <= set(dag.params)


def test_the_scheduler_gets_the_sla_alert_and_dags_test_does_not(airflow_env, monkeypatch):
    scheduled = load(["airflow", "dag-processor"], monkeypatch)
    (alert,) = scheduled.deadline
    assert alert.interval == timedelta(seconds=600)
    assert alert.callback.path == "clickstream.notifications.sla_email.email_deadline_missed"
    assert load(["airflow", "dags", "test", "clickstream_pipeline"], monkeypatch).deadline in (None, [])
