"""verify_redis alone, fed a burst digest through conf: the tests check its failure message."""

from __future__ import annotations

from airflow.sdk import DAG, Param

from clickstream.sensors.redis_sla import ClickstreamRedisSlaSensor

with DAG(
    dag_id="clickstream_redis_sla",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,
    params={"burst": Param({}, type="object"), "freshness_s": Param(300, type="number")},
) as dag:
    ClickstreamRedisSlaSensor(
        task_id="verify_redis",
        burst="{{ params.burst }}",
        freshness_s="{{ params.freshness_s }}",
        exact_totals=True,
        timeout=6,
        poke_interval=1,
    )
