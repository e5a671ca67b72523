"""clickstream_streaming: the Spark streaming job kept alive for good, for production.

    create_kafka_topic >> stream_clicks

stream_clicks runs until asked to stop, restarting the job from its checkpoint when it crashes or
stalls (up to ``max_restarts`` per task try; the task's own retries, 30 s apart, start a fresh budget). Ask it to
stop with ``redis-cli --user writer HSET clickstream:control:streaming command stop requested_ms <epoch ms>``
(as the Redis user ``writer`` or ``admin``; or ``clickstream.redis_layout.request_stop``): the running batch
finishes and the task succeeds.

A failed task emails its error through ``smtp_default`` (recipients: the Variable
``clickstream_sla_email_to``). When the same micro-batch fails after every restart, the failure names
the batch and its Kafka offsets.

It shares the checkpoint with clickstream_pipeline's bounded job: run one or the other, not both.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from clickstream.defaults import SPARK_JARS, SPARK_METRICS_PORT, WATERMARK
from clickstream.notifications.task_failure import task_failure_email
from clickstream.operators.kafka_topics import CreateClickstreamTopicsOperator
from clickstream.operators.streaming import ClickstreamStreamingOperator

SPARK_APPS = Path(__file__).resolve().parent.parent / "include" / "spark"

with DAG(
    dag_id="clickstream_streaming",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["clickstream"],
    # A retry restarts the job from its checkpoint: Airflow's default 5-minute wait would only hold the counts
    # back. (Airflow itself can fail a resumed try, apache/airflow#67287 and #72716: the trigger's settle_s makes
    # that rare, the short retry delay makes it cheap.)
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "on_failure_callback": task_failure_email()},
    params={
        "watermark": Param(WATERMARK, type="string"),
        "trigger_interval": Param("1 second", type="string"),
        "stall_timeout_s": Param(180, type="number", minimum=10),
        "max_restarts": Param(10, type="integer", minimum=0),
    },
) as dag:
    create_kafka_topic = CreateClickstreamTopicsOperator(task_id="create_kafka_topic", kafka_config_id="kafka_admin")
    stream_clicks = ClickstreamStreamingOperator(
        task_id="stream_clicks",
        application=str(SPARK_APPS / "clickstream_streaming.py"),
        mode="long_running",
        watermark="{{ params.watermark }}",
        trigger_interval="{{ params.trigger_interval }}",
        stall_timeout_s="{{ params.stall_timeout_s }}",
        max_restarts="{{ params.max_restarts }}",
        jars=SPARK_JARS,
        metrics_port=SPARK_METRICS_PORT,
        kafka_config_id="kafka_streaming",
    )
    create_kafka_topic >> stream_clicks
