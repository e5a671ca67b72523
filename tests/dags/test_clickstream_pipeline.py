"""`airflow dags test clickstream_pipeline` against real Kafka, Spark and Redis, and verify_redis failing."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

import pytest
from airflow_cli import airflow_dags_test

from clickstream import redis_layout
from clickstream.schema import window_label

pytestmark = pytest.mark.dags


def delete_topics(kafka_broker, *topics: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka_broker.client_config("ops"))
    for future in admin.delete_topics(list(topics)).values():
        with contextlib.suppress(Exception):  # not created when the DAG failed early
            future.result(30)


def test_streaming_alone_counts_every_event_once_and_the_pipeline_passes_its_sla(
    airflow_env, kafka_broker, redis_client, read_topic
):
    """With repair off, the counts in Redis are the streaming job's alone, and the reconciler finds nothing
    missing: a sink that counted nothing would fail here rather than be refilled by the repair."""
    topic = f"clickstream-test-events-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}-dlq"
    kafka_broker.grant(events=topic, dead_letters=dlq)  # the principals' ACLs, for this run's topics
    conf = {"topic": topic, "dead_letter_topic": dlq, "events": 5000, "exact_totals": True, "late_share": 0.0,
            "repair": False}  # fmt: skip
    try:
        code, output, wall_s = airflow_dags_test(airflow_env, "clickstream_pipeline", conf)
        print(f"airflow dags test clickstream_pipeline: exit {code} after {wall_s:.1f}s")
        assert code == 0, output[-6000:]
        assert output.count("new_state=success") == 5, "every one of the five tasks succeeds"
        assert output.count("new_state=deferred") == 1, "stream_clicks waits in its trigger"
        assert "Streaming job" in output and "finished (every query stopped cleanly and the job exited)" in output

        # Every event is either counted once in Redis or dead-lettered once, nothing else.
        counted = sum(
            int(n) for key in redis_client.scan_iter(f"{redis_layout.COUNT_PREFIX}*") for n in redis_client.hvals(key)
        )
        dead = read_topic(dlq)
        assert counted + len(dead) == 5000, (counted, len(dead))
        assert 0 < len(dead) < 200
        assert "Redis SLA met" in output
        report, _ = json.JSONDecoder().raw_decode(output.split("CLICKSTREAM_REPORT ", 1)[1])
        assert report["events_read"] == 5000
        assert sum(report["invalid_events"].values()) == len(dead)
        assert report["repair_requested"] is False and report["repaired_cells"] == 0
        assert report["cells_matching"] == report["cells_compared"] > 0, report
        assert report["cells_missing_in_redis"] == report["cells_short_in_redis"] == 0, report
        assert report["cells_over_in_redis"] == report["events_missing_from_redis"] == 0, report
    finally:
        delete_topics(kafka_broker, topic, dlq)


def test_events_beyond_the_watermark_are_repaired_by_the_batch_and_the_pipeline_passes(
    airflow_env, kafka_broker, redis_client, read_topic
):
    """Repair on purpose: a tight watermark over small micro-batches drops late events from the stream; the
    batch reconciler finds exactly those missing and writes them, so Redis ends exact (``exact_totals``)."""
    topic = f"clickstream-test-events-{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}-dlq"
    kafka_broker.grant(events=topic, dead_letters=dlq)  # the principals' ACLs, for this run's topics
    conf = {"topic": topic, "dead_letter_topic": dlq, "events": 5000, "exact_totals": True, "late_share": 0.2,
            "watermark": "5 seconds", "max_offsets_per_trigger": 500, "repair": True}  # fmt: skip
    try:
        code, output, wall_s = airflow_dags_test(airflow_env, "clickstream_pipeline", conf)
        print(f"airflow dags test clickstream_pipeline (repair): exit {code} after {wall_s:.1f}s")
        assert code == 0, output[-6000:]
        report, _ = json.JSONDecoder().raw_decode(output.split("CLICKSTREAM_REPORT ", 1)[1])
        print({k: v for k, v in report.items() if k not in ("invalid_events", "differences")})
        # What the stream dropped, the batch found and repaired: every short or missing cell, nothing else.
        assert report["repair_requested"] is True
        assert report["events_missing_from_redis"] > 0, "the watermark dropped nothing: the test proves nothing"
        assert report["cells_over_in_redis"] == 0, report
        shortfall = report["cells_short_in_redis"] + report["cells_missing_in_redis"]
        assert report["repaired_cells"] == shortfall > 0, report
        # After the repair, every event is counted once in Redis or dead-lettered once.
        counted = sum(
            int(n) for key in redis_client.scan_iter(f"{redis_layout.COUNT_PREFIX}*") for n in redis_client.hvals(key)
        )
        assert counted == report["valid_events"] and counted + len(read_topic(dlq)) == 5000, counted
        assert "Redis SLA met" in output
    finally:
        delete_topics(kafka_broker, topic, dlq)


def test_verify_redis_fails_naming_the_stale_and_short_pages(airflow_env, redis_client):
    now_ms = int(time.time() * 1000)
    fresh = now_ms - now_ms % 60_000
    stale = fresh - 10 * 60_000
    # Redis was last written ten minutes ago: /home stops there, /about never arrived.
    redis_layout.apply_window_counts(redis_client, [("/home", stale, 40)])
    burst = {
        "ground_truth": {
            "page_totals": {"/home": 50, "/about": 7},
            "page_newest_window_ms": {"/home": fresh, "/about": fresh},
            "first_window_ms": stale,
            "last_window_ms": fresh,
        }
    }
    env = {**airflow_env, "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).with_name("dag_files"))}
    code, output, _ = airflow_dags_test(env, "clickstream_redis_sla", {"burst": burst, "freshness_s": 120})
    assert code != 0, output[-4000:]
    assert "Redis SLA not met for the burst's 2 pages" in output
    assert f"stale: the newest window in Redis, {window_label(stale)}, is " in output
    assert (
        f"stale page /home: newest window in Redis {window_label(stale)}, the burst reached {window_label(fresh)}"
        in output
    )
    assert f"stale page /about: newest window in Redis none, the burst reached {window_label(fresh)}" in output
    assert (
        f"wrong count for page /home: Redis holds 40 over windows ['{window_label(stale)}'], the burst sent 50"
        in output
    )
    assert "wrong count for page /about: Redis holds 0 over windows none, the burst sent 7 (short by 7)" in output
