"""Helpers for tests that run the Spark applications under include/spark/ with spark-submit."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

from clickstream import redis_layout
from clickstream.kafka_security import security_env, security_settings, spark_kafka_options
from clickstream.producing import BurstProducer
from clickstream.schema import label_start_ms
from clickstream.traffic import TrafficConfig, TrafficGenerator
from devstack.paths import SPARK_JARS_DIR
from devstack.spark import spark_submit_command

REPO = Path(__file__).resolve().parent.parent
STREAMING_APP = REPO / "include/spark/clickstream_streaming.py"
BATCH_APP = REPO / "include/spark/clickstream_batch.py"
JARS_DIR = SPARK_JARS_DIR


def submit(app: Path, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """spark-submit ``app``; credentials go in ``env`` (``REDIS_URL``), as the operators pass them, never in args."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            spark_submit_command(app, *args),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def log_tail(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]


def wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the Spark job did not finish within {timeout}s:\n{log_tail(proc)}") from None


def produce(kafka_config: dict, topic: str, config: TrafficConfig, count: int) -> None:
    """``count`` generated events on ``topic``, with the librdkafka settings ``kafka_config`` (who logs in)."""
    stats = BurstProducer(dict(kafka_config)).send(topic, TrafficGenerator(config).records(count))
    assert stats.delivered == count, stats.to_dict()


def redis_counts(client) -> dict[tuple[str, int], int]:
    """Every ``click_count:*`` cell in Redis as ``{(page, window_start_ms): n}``, like ``GroundTruth.window_counts``.

    All of them, not only the pages and windows of the ground truth: a count written to a page or a window
    that should have none shows up as a difference.
    """
    return {(page, label_start_ms(label)): n for (page, label), n in all_counts(client).items()}


def redis_dead_letter_windows(client) -> list[str]:
    """The windows with dead letters, oldest first."""
    return [label.decode() for label in client.zrange(redis_layout.DEAD_WINDOWS_KEY, 0, -1)]


def redis_dead_letters(client) -> dict[str, int]:
    """Dead letters by reason over every window Redis holds them for."""
    totals: dict[str, int] = {}
    for label in redis_dead_letter_windows(client):
        for reason, n in client.hgetall(redis_layout.dead_key(label)).items():
            totals[reason.decode()] = totals.get(reason.decode(), 0) + int(n)
    return totals


def dense_hyperloglog(client, *ids: str) -> bytes:
    """``ids`` in a HyperLogLog in Redis's dense encoding, built by Redis itself (PFADD, PFDEBUG TODENSE)."""
    client.pfadd("test:dense-users", *ids)
    client.execute_command("PFDEBUG", "TODENSE", "test:dense-users")
    dense = client.get("test:dense-users")
    client.delete("test:dense-users")
    return dense


def all_counts(client) -> Counter:
    """Every ``click_count:*`` cell in Redis, ``{(page, window_label): count}``: what landed anywhere."""
    cells: Counter = Counter()
    for key in client.scan_iter(f"{redis_layout.COUNT_PREFIX}*"):
        page = key.decode()[len(redis_layout.COUNT_PREFIX) :]
        for label, n in client.hgetall(key).items():
            cells[(page, label.decode())] += int(n)
    return cells


def spark_kafka(kafka_config: dict) -> dict[str, str]:
    """Spark's ``kafka.*`` options for librdkafka settings: where, and as whom."""
    return {
        "kafka.bootstrap.servers": kafka_config["bootstrap.servers"],
        **spark_kafka_options(security_settings(kafka_config)),
    }


def foreach_batch_query(
    spark, kafka_config: dict, topic: str, sink, checkpoint: Path, max_offsets: int | None = None, name=None
):
    """A streaming query over all of ``topic`` (``availableNow``) that hands each micro-batch to ``sink``."""
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_kafka(kafka_config))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
    )
    if max_offsets is not None:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets)
    writer = reader.load().writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
    if name is not None:
        writer = writer.queryName(name)
    return writer.trigger(availableNow=True).start()


def kafka_env(broker, user: str) -> dict[str, str]:
    """A Spark job's environment that logs it in to ``broker`` as ``user``, as the operators pass it."""
    return security_env(broker.client_config(user))
