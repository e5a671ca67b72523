"""The streaming application end to end: real Kafka in, real Spark, real Redis out, against the ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from spark_jobs import (
    log_tail,
    produce,
    redis_counts,
    redis_dead_letter_windows,
    redis_dead_letters,
    wait_exit,
)

from clickstream import redis_layout
from clickstream.schema import InvalidEvent, validate, window_label, window_start_ms
from clickstream.traffic import TrafficConfig, generate, ground_truth

pytestmark = pytest.mark.integration


def test_in_order_stream_counts_equal_the_ground_truth(
    kafka_broker, topic_factory, redis_client, streaming_job, read_topic
):
    topic = topic_factory("stream", partitions=3)
    dlq = topic_factory("stream-dlq", partitions=1, dead_letters_of=topic)
    now = int(time.time() * 1000)
    config = TrafficConfig(seed=3, start_ms=now - 240_000, events_per_second=100, malformed_share=0.02)
    produce(kafka_broker.client_config("producer"), topic, config, 24_000)
    truth = ground_truth(config, 24_000)

    job = streaming_job(topic, dlq, "--available-now", "--max-offsets-per-trigger", "6000")
    assert wait_exit(job, 240) == 0, log_tail(job)

    assert redis_counts(redis_client) == dict(truth.window_counts)
    # The public layout, literally: HGET click_count:<page> <window label> is the count.
    (page, window), n = next(iter(truth.window_counts.items()))
    assert int(redis_client.hget(f"click_count:{page}", window_label(window))) == n

    # Every malformed record is in the dead-letter topic, byte for byte, with its reason.
    letters = read_topic(dlq)
    malformed = sum(truth.malformed.values())
    assert len(letters) >= malformed  # at least once; no crash happened here, so exactly once
    assert len(letters) == malformed
    # ... and counted by reason in the window each reached Kafka in, under the batch fence: once each.
    by_reason = redis_dead_letters(redis_client)
    assert by_reason == {reason: n for reason, n in truth.malformed.items() if n}
    arrived = range(window_start_ms(now), int(time.time() * 1000), 60_000)  # the minutes this test produced in
    assert set(redis_dead_letter_windows(redis_client)) <= {window_label(w) for w in arrived}

    # Per window, for dashboards in one call: total, approximate unique users, top pages.
    busiest = max(
        {w for _, w in truth.window_counts},
        key=lambda w: sum(n for (_, w2), n in truth.window_counts.items() if w2 == w),
    )
    summary = redis_layout.read_window(redis_client, window_label(busiest))
    expected_total = sum(n for (_, w), n in truth.window_counts.items() if w == busiest)
    assert summary["total"] == expected_total
    # The window's users count exactly as a HyperLogLog fed the window's true user ids by PFADD would.
    users = set()
    for record in generate(config, 24_000):
        try:
            view = validate(record.value, now_ms=now + 3_600_000)
        except InvalidEvent:
            continue
        if window_start_ms(view.ts) == busiest:
            users.add(view.user_id)
    redis_client.pfadd("test:true-users", *users)
    assert summary["unique_users"] == redis_client.pfcount("test:true-users")
    assert abs(summary["unique_users"] - len(users)) <= 0.05 * len(users)
    _, top_count = summary["top_pages"][0]
    assert top_count == max(n for (_, w), n in truth.window_counts.items() if w == busiest)

    progress = {
        k.decode(): v.decode() for k, v in redis_client.hgetall("clickstream:progress:clickstream_counts").items()
    }
    assert int(progress["batch_id"]) >= 3
    assert progress["newest_window"] == window_label(max(w for _, w in truth.window_counts))
    assert "watermark" in progress and int(progress["updated_ms"]) >= now
    assert int(progress["offsets_behind_latest"]) >= 0  # the Kafka source's lag, for the serving API


def test_out_of_order_stream_within_the_watermark_counts_everything(
    kafka_broker, topic_factory, redis_client, streaming_job, read_topic
):
    topic = topic_factory("ooo", partitions=3)
    dlq = topic_factory("ooo-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(
        seed=8, start_ms=int(time.time() * 1000) - 300_000, events_per_second=80,
        late_share=0.25, late_mean_delay_s=20, late_max_delay_s=90, malformed_share=0.01,
    )  # fmt: skip
    produce(kafka_broker.client_config("producer"), topic, config, 24_000)
    truth = ground_truth(config, 24_000)
    assert truth.late > 5000

    # Many small batches, so the watermark moves while late events keep arriving behind it.
    job = streaming_job(
        topic, dlq, "--available-now", "--max-offsets-per-trigger", "3000", "--watermark", "3 minutes",
    )  # fmt: skip
    assert wait_exit(job, 300) == 0, log_tail(job)
    assert redis_counts(redis_client) == dict(truth.window_counts)
    assert len(read_topic(dlq)) == sum(truth.malformed.values())


def test_a_batch_replayed_after_a_crash_changes_nothing(
    topic_factory, kafka_broker, redis_client, streaming_job, tmp_path
):
    """The crash the sink's commit guards against, made certain: Redis has the batch, Spark's log does not."""
    topic = topic_factory("replay", partitions=2)
    dlq = topic_factory("replay-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(seed=21, start_ms=int(time.time() * 1000) - 120_000, events_per_second=50)
    produce(kafka_broker.client_config("producer"), topic, config, 6000)
    truth = ground_truth(config, 6000)
    checkpoint = tmp_path / "replay-checkpoint"
    first = streaming_job(topic, dlq, "--available-now", "--max-offsets-per-trigger", "2000", checkpoint=checkpoint)
    assert wait_exit(first, 240) == 0, log_tail(first)
    assert redis_counts(redis_client) == dict(truth.window_counts)

    # Forget that the last batch was committed, as if the driver died right after writing Redis.
    commits = sorted((checkpoint / "counts/commits").glob("[0-9]*"), key=lambda p: int(p.name))
    last = int(commits[-1].name)
    commits[-1].unlink()
    (commits[-1].parent / f".{last}.crc").unlink(missing_ok=True)  # Hadoop's checksum beside it
    again = streaming_job(topic, dlq, "--available-now", checkpoint=checkpoint)
    assert wait_exit(again, 240) == 0, log_tail(again)

    assert f"batch {last}: Redis has counted all its offsets already" in Path(again.log_path).read_text()
    assert redis_counts(redis_client) == dict(truth.window_counts)


def test_exactly_once_through_three_sigkills(kafka_broker, topic_factory, redis_client, streaming_job, tmp_path):
    import json
    import os
    import random
    import signal

    topic = topic_factory("kill", partitions=3)

    dlq = topic_factory("kill-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(
        seed=13, start_ms=int(time.time() * 1000) - 400_000, events_per_second=100,
        late_share=0.1, late_max_delay_s=60, malformed_share=0.01,
    )  # fmt: skip
    produce(kafka_broker.client_config("producer"), topic, config, 40_000)
    truth = ground_truth(config, 40_000)
    checkpoint = tmp_path / "kill-checkpoint"
    progress_key = redis_layout.progress_key("clickstream_counts")
    rng = random.Random(os.environ.get("CLICKSTREAM_KILL_SEED", "20261128"))
    kills = []

    def batch_id() -> int:
        value = redis_client.hget(progress_key, "batch_id")
        return int(value) if value is not None else -1

    for kill in range(3):
        before = batch_id()
        job = streaming_job(topic, dlq, "--max-offsets-per-trigger", "1500", "--watermark", "3 minutes",
                            checkpoint=checkpoint)  # fmt: skip
        # Wait until this run has committed a few batches of its own, then kill it at a random moment,
        # most likely in the middle of a batch (Redis written, offsets not yet committed, or the reverse).
        target = before + rng.randint(1, 4)
        deadline = time.monotonic() + 180
        while batch_id() < target and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.2)
        assert job.poll() is None, log_tail(job)
        time.sleep(rng.uniform(0.0, 1.5))
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        kills.append({"kill": kill + 1, "batch_id_seen": batch_id(), "cells_in_redis": len(redis_counts(redis_client))})

    drain = ("--available-now", "--max-offsets-per-trigger", "20000", "--watermark", "3 minutes")
    final = streaming_job(topic, dlq, *drain, checkpoint=checkpoint)
    assert wait_exit(final, 300) == 0, log_tail(final)

    counts = redis_counts(redis_client)
    differing = {cell: (counts.get(cell), n) for cell, n in truth.window_counts.items() if counts.get(cell) != n}
    print("kill points:", json.dumps(kills))
    print(f"final comparison: {len(truth.window_counts)} cells, {len(differing)} differ, "
          f"{sum(counts.values())} counted of {truth.valid} valid events")  # fmt: skip
    assert len(kills) == 3 and kills[0]["batch_id_seen"] < kills[-1]["batch_id_seen"]
    assert differing == {}
    assert set(counts) == set(truth.window_counts)


def python_driver(spark_submit_pid: int):
    """The application's Python process, a child of spark-submit's JVM (short-lived helpers are skipped)."""
    import psutil

    for child in psutil.Process(spark_submit_pid).children(recursive=True):
        try:
            if "clickstream_streaming.py" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    raise AssertionError("the streaming application's Python driver is not running")


def test_sigterm_finishes_the_running_batch_and_exits_cleanly(
    kafka_broker, topic_factory, redis_client, streaming_job, tmp_path
):
    import signal

    topic = topic_factory("term", partitions=3)

    dlq = topic_factory("term-dlq", partitions=1, dead_letters_of=topic)
    config = TrafficConfig(seed=4, start_ms=int(time.time() * 1000) - 200_000, events_per_second=200)
    produce(kafka_broker.client_config("producer"), topic, config, 40_000)
    job_checkpoint = tmp_path / "term-checkpoint"
    # At most 400 events a second: a backlog of 100 s, so the signal always lands mid-stream.
    job = streaming_job(topic, dlq, "--max-offsets-per-trigger", "400", checkpoint=job_checkpoint)
    key = redis_layout.progress_key("clickstream_counts")
    deadline = time.monotonic() + 120
    while int(redis_client.hget(key, "batch_id") or -1) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    # The Python driver is a child of spark-submit's JVM; SIGTERM goes to the driver, as a supervisor sends it.
    driver = python_driver(job.pid)
    driver.send_signal(signal.SIGTERM)
    assert wait_exit(job, 120) == 0, log_tail(job)
    assert "stopped cleanly" in log_tail(job)
    # What it committed is consistent: resuming from the checkpoint ends exactly at the ground truth.
    truth = ground_truth(config, 40_000)
    assert 0 < sum(redis_counts(redis_client).values()) < truth.valid
    resumed = streaming_job(topic, dlq, "--available-now", checkpoint=job_checkpoint)
    assert wait_exit(resumed, 180) == 0, log_tail(resumed)
    assert redis_counts(redis_client) == dict(truth.window_counts)
