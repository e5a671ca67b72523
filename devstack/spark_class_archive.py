"""A class-data archive (JDK CDS) for Spark drivers, so the tests' many short-lived drivers start faster.

A Spark driver loads and verifies some 15,000 classes before its first micro-batch, and JIT-compiles them
on the side: on two cores that is most of a driver's start. The JVM can instead map the classes, already
parsed and verified, from an archive written by an earlier run (``-XX:ArchiveClassesAtExit``). This module
writes that archive by running, under spark-submit, what the project's drivers do (parse Kafka-shaped
records, tally, a micro-batch query with a ``foreachBatch`` sink), and :func:`archive_options` returns the JVM option
that uses it (``tests/conftest.py`` adds it to ``SPARK_SUBMIT_OPTS``). A stale or mismatched archive costs
nothing but the speed-up: the JVM checks it and starts without it (``-Xshare:auto``, the default).

Run as ``python -m devstack.spark_class_archive ARCHIVE`` (``scripts/setup.sh --test-tools`` does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# No devstack import up here: spark-submit runs this file as a script, where only its own folder is on the path.
# The JVM options the tests give their Spark drivers (tests/conftest.py); the archive is written under them.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def default_archive() -> Path:
    from devstack.paths import DEPS

    return DEPS / "spark-cds" / "driver.jsa"


def archive_options(archive: Path | None = None) -> list[str]:
    """The JVM option that maps ``archive`` (by default ``make setup``'s), none when it was not built."""
    archive = archive or default_archive()
    return [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []


def _workload() -> None:
    """What a driver of this project does, on a few generated records (run under spark-submit)."""
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F

    from clickstream.spark.parse import invalid_events, parse_events
    from clickstream.spark.transforms import batch_summary, compact, dead_letters, tally
    from clickstream.traffic import TrafficConfig, generate

    spark = (
        SparkSession.builder.appName("clickstream-class-archive")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    records = [
        (r.key, r.value, "clickstream-events", i % 3, i, int(time.time() * 1000))
        for i, r in enumerate(generate(TrafficConfig(seed=7, malformed_share=0.1), 500))
    ]
    raw = spark.createDataFrame(
        records, "key binary, value binary, topic string, partition int, offset long, ts_ms long"
    ).withColumn("timestamp", F.timestamp_millis("ts_ms"))

    def one_batch(frame: DataFrame, _batch_id: int) -> None:
        parsed = parse_events(frame)
        batch_summary(compact(parsed))
        tally(parsed).collect()
        dead_letters(invalid_events(parsed)).collect()

    one_batch(raw.drop("ts_ms"), 0)
    # A micro-batch query: the streaming engine, its checkpoint and a foreachBatch sink.
    with tempfile.TemporaryDirectory() as checkpoint:
        stream = (
            spark.readStream.format("rate")
            .option("rowsPerSecond", 50)
            .load()
            .select("timestamp")  # the rate source's time stands in for Kafka's
            .crossJoin(raw.drop("timestamp", "ts_ms").limit(20))
        )
        query = (
            stream.writeStream.foreachBatch(one_batch)
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="1 second")
            .start()
        )
        deadline = time.monotonic() + 120
        while query.isActive and (query.lastProgress or {}).get("batchId", -1) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        if not query.isActive:
            raise RuntimeError(f"the micro-batch query failed: {query.exception()}")
        query.stop()
    with_kafka = spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9")
    with_kafka.option("subscribe", "clickstream-events").load().schema  # noqa: B018 (loads the connector)
    spark.stop()


def build(archive: Path) -> None:
    """Write ``archive`` from one run of the workload (about a minute)."""
    from devstack.spark import spark_submit_command

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    command = spark_submit_command(Path(__file__), "--workload")
    env = {**os.environ, "SPARK_SUBMIT_OPTS": f"-XX:ArchiveClassesAtExit={partial} {TEST_JVM_OPTIONS}"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not partial.is_file():
        raise SystemExit(
            f"the Spark class-data archive was not written (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
    partial.replace(archive)


if __name__ == "__main__":
    if sys.argv[1:] == ["--workload"]:
        _workload()
    else:
        build(Path(sys.argv[1]) if len(sys.argv) > 1 else default_archive())
