"""The streaming job's own metrics, sent as StatsD (UDP, fire-and-forget) to the same statsd_exporter
Airflow reports to, under ``clickstream.streaming.<query>.<metric>``.

Without an address (``CLICKSTREAM_STATSD_ADDRESS=host:port``) every call is a no-op, so the job runs
the same with or without monitoring.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StreamingMetrics:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("CLICKSTREAM_STATSD_ADDRESS", "")
        self._client: Any = None
        if address:
            import statsd

            host, _, port = address.rpartition(":")
            self._client = statsd.StatsClient(host or "127.0.0.1", int(port), prefix="clickstream.streaming")

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def gauge(self, query: str, name: str, value: float) -> None:
        if self._client is not None:
            self._client.gauge(f"{query}.{name}", value)

    def incr(self, query: str, name: str, count: int = 1) -> None:
        if self._client is not None and count:
            self._client.incr(f"{query}.{name}", count)

    def timing_ms(self, query: str, name: str, ms: float) -> None:
        if self._client is not None:
            self._client.timing(f"{query}.{name}", ms)

    @contextmanager
    def timed(self, query: str, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timing_ms(query, name, (time.perf_counter() - started) * 1000)

    def progress(self, query: str, progress: Any) -> None:
        """One micro-batch's figures: rates, duration, rows, how far behind Kafka's end, and a heartbeat."""
        if self._client is None:
            return
        self.gauge(query, "input_rows_per_s", round(progress.inputRowsPerSecond or 0.0, 1))
        self.gauge(query, "processed_rows_per_s", round(progress.processedRowsPerSecond or 0.0, 1))
        self.incr(query, "input_rows", int(progress.numInputRows or 0))
        self.timing_ms(query, "batch_duration", (progress.durationMs or {}).get("triggerExecution", 0))
        behind = offsets_behind_latest(progress)
        if behind is not None:
            self.gauge(query, "offsets_behind_latest", behind)
        self.heartbeat(query)

    def heartbeat(self, query: str) -> None:
        self.gauge(query, "last_progress_timestamp_seconds", round(time.time(), 3))


def offsets_behind_latest(progress: Any) -> float | None:
    """Consumer lag: the Kafka source's ``maxOffsetsBehindLatest``, when Spark reports it."""
    for source in progress.sources or []:
        metrics = getattr(source, "metrics", None) or {}
        if "maxOffsetsBehindLatest" in metrics:
            return float(metrics["maxOffsetsBehindLatest"])
    return None
