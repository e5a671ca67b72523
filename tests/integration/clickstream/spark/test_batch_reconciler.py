"""The batch reconciler finds what the streaming watermark dropped, and repairs Redis idempotently."""

from __future__ import annotations

import json
import time

import pytest
from spark_jobs import BATCH_APP, kafka_env, log_tail, produce, redis_counts, submit, wait_exit

from clickstream.traffic import TrafficConfig, ground_truth

pytestmark = pytest.mark.integration


def run_batch(kafka_broker, redis_server, topic: str, tmp_path, *extra: str) -> dict:
    report_file = tmp_path / f"report-{time.monotonic_ns()}.json"
    args = [
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic,
        "--report-file", str(report_file), *extra,
    ]  # fmt: skip
    log = tmp_path / f"batch-{time.monotonic_ns()}.log"
    job = submit(
        BATCH_APP, args, log, env={"REDIS_URL": redis_server.url("reconciler"), **kafka_env(kafka_broker, "reconciler")}
    )
    assert wait_exit(job, 240) == 0, log_tail(job)
    report = json.loads(report_file.read_text())
    output = job.log_path.read_text(errors="replace")
    marker = [line for line in output.splitlines() if line.startswith("CLICKSTREAM_REPORT ")]
    assert marker and json.loads(marker[-1].split(" ", 1)[1]) == report
    return report


def test_events_later_than_the_watermark_are_found_and_repaired(
    kafka_broker, redis_server, redis_client, topic_factory, streaming_job, tmp_path
):
    topic = topic_factory("late", partitions=3)
    dlq = topic_factory("late-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(
        seed=21, start_ms=int(time.time() * 1000) - 600_000, events_per_second=50,
        late_share=0.15, late_mean_delay_s=120, late_max_delay_s=400, malformed_share=0.02,
    )  # fmt: skip
    produce(kafka_broker.client_config("producer"), topic, config, 25_000)
    truth = ground_truth(config, 25_000)

    # A tight watermark and small batches: the stream moves on and drops events that arrive too late.
    job = streaming_job(topic, dlq, "--available-now", "--max-offsets-per-trigger", "2500", "--watermark", "30 seconds")
    assert wait_exit(job, 300) == 0, log_tail(job)
    before = redis_counts(redis_client)
    dropped = truth.valid - sum(before.values())
    assert dropped > 100, "the test needs events that the watermark dropped"

    report = run_batch(kafka_broker, redis_server, topic, tmp_path)
    assert report["events_read"] == 25_000
    assert report["valid_events"] == truth.valid
    assert report["invalid_events"] == dict(truth.malformed)
    assert report["events_missing_from_redis"] == dropped
    assert report["cells_over_in_redis"] == 0
    assert report["repaired_cells"] == 0 and redis_counts(redis_client) == before  # report only

    repaired = run_batch(kafka_broker, redis_server, topic, tmp_path, "--repair")
    assert repaired["repaired_cells"] == report["cells_short_in_redis"] + report["cells_missing_in_redis"] > 0
    assert redis_counts(redis_client) == dict(truth.window_counts)

    again = run_batch(kafka_broker, redis_server, topic, tmp_path, "--repair")
    assert again["cells_matching"] == again["cells_compared"] and again["repaired_cells"] == 0
