"""Batch reconciler: recount windows from Kafka, compare them with Redis, report, and optionally repair.

    spark-submit --jars <connector jars> include/spark/clickstream_batch.py \\
        --bootstrap-servers 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379/0 --from-ms 1765000000000 [--repair]

It reads an offset range (``--starting-offsets``/``--ending-offsets``) or a range of record times
(``--from-ms``/``--to-ms``), validates with the same rules as the streaming job, and counts every valid
event per page and 1-minute window, with no watermark. Where Redis holds less than Kafka, events were
dropped (later than the streaming watermark, or a gap while the job was down); with ``--repair`` those
cells are overwritten with the recount, which is idempotent. Where Redis holds more, the window reaches
outside the range read, and it is reported, never lowered. The report is one JSON object, printed on a
line starting ``CLICKSTREAM_REPORT`` and written to ``--report-file`` when given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import redis
from pyspark.sql import SparkSession

from clickstream import redis_layout
from clickstream.defaults import RECONCILER_GROUP_PREFIX, RETENTION_MINUTES
from clickstream.kafka_security import kafka_options
from clickstream.reconcile import reconcile
from clickstream.schema import TOPIC
from clickstream.spark.parse import parse_events
from clickstream.spark.transforms import tally

log = logging.getLogger("clickstream.batch")
REPORT_MARKER = "CLICKSTREAM_REPORT"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--topic", default=TOPIC)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--starting-offsets", default="earliest")
    p.add_argument("--ending-offsets", default="latest")
    p.add_argument("--from-ms", type=int, help="first Kafka record time to read (epoch ms); overrides offsets")
    p.add_argument("--to-ms", type=int, help="read records before this Kafka record time (epoch ms)")
    p.add_argument("--repair", action="store_true", help="overwrite cells where Redis holds less than Kafka")
    p.add_argument("--retention-minutes", type=int, default=RETENTION_MINUTES)
    p.add_argument("--report-file", type=Path)
    p.add_argument("--shuffle-partitions", type=int, default=os.cpu_count() or 2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    spark = (
        SparkSession.builder.appName("clickstream-batch")
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    read_started = time.monotonic()
    reader = (
        spark.read.format("kafka")
        .options(**kafka_options(args.bootstrap_servers))
        .option("groupIdPrefix", RECONCILER_GROUP_PREFIX)
        .option("subscribe", args.topic)
    )
    if args.from_ms is not None or args.to_ms is not None:
        if args.from_ms is not None:
            reader = reader.option("startingTimestamp", str(args.from_ms))
        if args.to_ms is not None:
            reader = reader.option("endingTimestamp", str(args.to_ms))
        selected = {"from_ms": args.from_ms, "to_ms": args.to_ms}
    else:
        reader = reader.option("startingOffsets", args.starting_offsets).option("endingOffsets", args.ending_offsets)
        selected = {"starting_offsets": args.starting_offsets, "ending_offsets": args.ending_offsets}

    recount: dict[tuple[str, int], int] = {}
    invalid: dict[str, int] = {}
    offset_range: dict[str, list[int]] = {}
    for row in tally(parse_events(reader.load())).collect():  # one pass over Kafka: nothing cached or spilled
        if row.reject_reason is None:
            cell = (row.page, row.window_start_ms)
            recount[cell] = recount.get(cell, 0) + row["count"]
        else:
            invalid[row.reject_reason] = invalid.get(row.reject_reason, 0) + row["count"]
        first, last = offset_range.get(str(row.partition), [row.first_offset, row.last_offset])
        offset_range[str(row.partition)] = [min(first, row.first_offset), max(last, row.last_offset)]
    read_s = time.monotonic() - read_started

    valid = sum(recount.values())
    client = redis.Redis.from_url(args.redis_url)
    stored = redis_layout.read_counts(client, {page for page, _ in recount})
    comparison, repairs = reconcile(recount, stored)
    repaired = 0
    if args.repair and repairs:
        retention_ms = args.retention_minutes * 60_000 if args.retention_minutes > 0 else None
        redis_layout.apply_window_counts(client, repairs, retention_ms)
        repaired = len(repairs)
    events = valid + sum(invalid.values())
    report = {
        "topic": args.topic,
        "range": selected,
        "offsets": offset_range,
        "events_read": events,
        "valid_events": valid,
        "invalid_events": dict(sorted(invalid.items())),
        **comparison,
        "repaired_cells": repaired,
        "repair_requested": args.repair,
        "seconds": round(time.monotonic() - started, 2),
        "events_per_s": round(events / read_s, 1) if read_s > 0 else None,
    }
    text = json.dumps(report, sort_keys=True)
    if args.report_file:
        args.report_file.parent.mkdir(parents=True, exist_ok=True)
        args.report_file.write_text(text)
    print(f"{REPORT_MARKER} {text}", flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
