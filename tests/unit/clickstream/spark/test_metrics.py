"""The streaming job's StatsD metrics, received on a real UDP socket."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from clickstream.spark.metrics import StreamingMetrics, offsets_behind_latest


def progress(**overrides):
    source = SimpleNamespace(metrics={"maxOffsetsBehindLatest": "42", "avgOffsetsBehindLatest": "21.0"})
    fields = dict(
        inputRowsPerSecond=1234.56,
        processedRowsPerSecond=2000.0,
        numInputRows=500,
        durationMs={"triggerExecution": 250},
        sources=[source],
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_a_batch_sends_rates_rows_duration_lag_and_a_heartbeat():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(2)
        metrics = StreamingMetrics(f"127.0.0.1:{sink.getsockname()[1]}")
        metrics.progress("clickstream_counts", progress())
        lines = [sink.recv(1024).decode() for _ in range(6)]
    prefix = "clickstream.streaming.clickstream_counts."
    assert lines[:5] == [
        f"{prefix}input_rows_per_s:1234.6|g",
        f"{prefix}processed_rows_per_s:2000.0|g",
        f"{prefix}input_rows:500|c",
        f"{prefix}batch_duration:250.000000|ms",
        f"{prefix}offsets_behind_latest:42.0|g",
    ]
    assert lines[5].startswith(f"{prefix}last_progress_timestamp_seconds:") and lines[5].endswith("|g")


def test_without_an_address_nothing_is_sent():
    metrics = StreamingMetrics("")
    assert not metrics.enabled
    metrics.progress("q", progress())  # no socket, no error
    with metrics.timed("q", "redis_write"):
        pass


def test_lag_is_absent_when_spark_does_not_report_it():
    assert offsets_behind_latest(progress(sources=[SimpleNamespace(metrics={})])) is None
    assert offsets_behind_latest(progress()) == 42.0
