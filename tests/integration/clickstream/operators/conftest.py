"""Streaming operators built for a test, and whatever jobs they left running killed after it."""

from __future__ import annotations

import pytest

from clickstream.operators.streaming import ClickstreamStreamingOperator
from clickstream.spark_job import SparkJobHandle


@pytest.fixture
def operators(airflow_env):
    """Builds operators; ``operators.handles`` collects the jobs they launch, killed afterwards."""
    handles: list[SparkJobHandle] = []

    def make(**kwargs) -> ClickstreamStreamingOperator:
        kwargs.setdefault("kafka_config_id", "kafka_streaming")  # the job's own principal, as in the DAGs
        return ClickstreamStreamingOperator(task_id="stream_clicks", **kwargs)

    make.handles = handles  # type: ignore[attr-defined]
    yield make
    for handle in handles:
        handle.kill()
