"""Streaming application: page views from Kafka, counted per page in 1-minute event-time windows, into Redis.

    spark-submit --jars <connector jars> include/spark/clickstream_streaming.py \\
        --bootstrap-servers 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379/0 --checkpoint-dir /var/lib/cs

One query, ``clickstream_counts``, hands each micro-batch of Kafka records to one sink, which parses it
once: invalid records go to the dead-letter topic with their reason; valid ones add to the page's window counts and
the window's users in Redis, in one atomic script that also records the Kafka offsets counted (per partition
of the topic's id) and the watermark, so a batch Spark replays after a crash, or plans again from another
checkpoint, changes nothing: Redis, not the checkpoint, decides what was counted.
A record that breaks the job where no validator caught it is isolated and dead-lettered as
``processing_error``. It reports progress to Redis. SIGTERM lets the running batch finish, then stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

from pyspark.sql import SparkSession

from clickstream.defaults import RETENTION_MINUTES, STREAMING_GROUP_PREFIX, WATERMARK
from clickstream.kafka_security import job_settings, kafka_options
from clickstream.kafka_topic_state import TopicState, read_topic_state
from clickstream.redis_layout import COUNTS_QUERY
from clickstream.schema import DEAD_LETTER_TOPIC, TOPIC
from clickstream.spark.checkpoint import COUNTS_CHECKPOINT
from clickstream.spark.metrics import StreamingMetrics
from clickstream.spark.progress import RedisProgressListener
from clickstream.spark.sinks import PageViewsSink
from clickstream.spark.transforms import interval_ms

log = logging.getLogger("clickstream.streaming")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--topic", default=TOPIC)
    p.add_argument("--dead-letter-topic", default=DEAD_LETTER_TOPIC)
    p.add_argument("--starting-offsets", default="earliest", help="earliest, latest, or Spark's per-partition JSON")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--checkpoint-dir", required=True, help="where Kafka offsets and the query's id survive restarts")
    p.add_argument("--watermark", default=WATERMARK, help="how late an event may be and still count")
    p.add_argument("--trigger", default="1 second", help="micro-batch interval")
    p.add_argument("--available-now", action="store_true", help="process what is in the topic now, then stop")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None)
    p.add_argument("--retention-minutes", type=int, default=RETENTION_MINUTES, help="Redis keeps windows this long")
    p.add_argument(
        "--shuffle-partitions",
        type=int,
        default=os.cpu_count() or 2,
        help="default: one per core (200 made every batch take ~10 s on 2 cores)",
    )
    p.add_argument("--ui", action="store_true", help="serve the Spark UI")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the Spark UI on this port with Prometheus metrics at /metrics/prometheus",
    )
    p.add_argument("--console-progress", action="store_true", help="show Spark's console progress bars")
    return p.parse_args(argv)


def build_session(args: argparse.Namespace) -> SparkSession:
    builder = (
        SparkSession.builder.appName("clickstream-streaming")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(args.ui or args.metrics_port is not None).lower())
        .config("spark.ui.showConsoleProgress", str(args.console_progress).lower())
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
        # Micro-batches are small and planned alike each time: re-optimizing them at run time costs latency.
        .config("spark.sql.adaptive.enabled", "false")
    )
    if args.metrics_port is not None:
        builder = (
            builder.config("spark.ui.port", str(args.metrics_port))
            .config("spark.ui.prometheus.enabled", "true")
            .config("spark.sql.streaming.metricsEnabled", "true")
            .config(
                "spark.metrics.conf.*.sink.prometheusServlet.class", "org.apache.spark.metrics.sink.PrometheusServlet"
            )
            .config("spark.metrics.conf.*.sink.prometheusServlet.path", "/metrics/prometheus")
        )
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spark = build_session(args)
    spark.sparkContext.setLogLevel("WARN")
    metrics = StreamingMetrics()  # StatsD to CLICKSTREAM_STATSD_ADDRESS, when set
    spark.streams.addListener(RedisProgressListener(args.redis_url, metrics))

    reader = (
        spark.readStream.format("kafka")
        .options(**kafka_options(args.bootstrap_servers))
        .option("groupIdPrefix", STREAMING_GROUP_PREFIX)
        .option("subscribe", args.topic)
        .option("startingOffsets", args.starting_offsets)
    )
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    trigger = {"availableNow": True} if args.available_now else {"processingTime": args.trigger}
    retention_ms = args.retention_minutes * 60_000 if args.retention_minutes > 0 else None
    topic = topic_state(args.bootstrap_servers, args.topic)
    log.info("counting %s; Redis records what it has counted under the topic's id", topic.describe())
    sink = PageViewsSink(
        args.redis_url,
        args.bootstrap_servers,
        args.dead_letter_topic,
        watermark_delay_ms=interval_ms(args.watermark),
        retention_ms=retention_ms,
        metrics=metrics,
        query_checkpoint=os.path.join(args.checkpoint_dir, COUNTS_CHECKPOINT),
        topic=args.topic,
        topic_id=topic.topic_id,
    )
    # The sink parses each micro-batch itself (the raw records are what it can isolate a failing record
    # from), and keeps the watermark that decides what counts with the counts, reporting it to Redis.
    query = (
        reader.load()
        .writeStream.foreachBatch(sink)
        .option("checkpointLocation", sink.query_checkpoint)
        .queryName(COUNTS_QUERY)
        .trigger(**trigger)
        .start()
    )
    queries = [query]

    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        log.info("signal %d: stopping after the running batch", signum)
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop_requested and any(q.isActive for q in queries):
        for q in queries:
            q.awaitTermination(0.5)
        failed = [q for q in queries if not q.isActive and q.exception() is not None]
        if failed:
            for q in queries:
                if q.isActive:
                    q.stop()
            log.error("query %s failed: %s", failed[0].name, failed[0].exception())
            return 1
    for q in queries:
        # Let the micro-batch running now commit, then stop. Behind a backlog the next batch starts at once,
        # so "no batch running" may never be seen: wait for this batch's progress instead. A batch that
        # stop() interrupts is not committed; the next start runs it again, and the sink's fence makes
        # that replay add nothing.
        running = last_batch_id(q) + 1
        deadline = time.monotonic() + 120
        while q.isActive and q.status["isTriggerActive"] and last_batch_id(q) < running:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        q.stop()
    spark.stop()
    log.info("stopped cleanly")
    return 0


def topic_state(bootstrap_servers: str, topic: str) -> TopicState:
    """The topic's cluster and id, with the login the job was handed: the id keys what Redis has counted."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **job_settings()})
    return read_topic_state(admin, topic)


def last_batch_id(query: Any) -> int:
    """The id of the query's last completed micro-batch, -1 before its first."""
    progress = query.lastProgress
    if progress is None:
        return -1
    return int(progress["batchId"] if isinstance(progress, dict) else progress.batchId)


if __name__ == "__main__":
    sys.exit(main())
