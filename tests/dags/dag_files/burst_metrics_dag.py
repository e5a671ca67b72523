"""A one-task DAG around the burst operator, run by tests/dags/test_burst_metrics.py with `airflow dags test`."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from clickstream.operators.producer_burst import ProduceClickstreamBurstOperator

with DAG(
    "clickstream_burst_metrics",
    schedule=None,
    catchup=False,
    params={"topic": Param("clickstream-events", type="string"), "events": Param(1000, type="integer")},
) as dag:
    ProduceClickstreamBurstOperator(
        task_id="burst", topic="{{ params.topic }}", events="{{ params.events }}", malformed_share=0.01
    )
