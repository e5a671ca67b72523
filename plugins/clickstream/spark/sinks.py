"""Where the streaming queries' micro-batches go: Redis (counts, users, progress) and the dead-letter topic.

Each sink is a callable for ``foreachBatch``; it runs on the driver, writes each batch in one Redis
round trip, and writes absolute values, so a batch that Spark replays after a crash changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import redis
from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQueryListener

from clickstream.redis_layout import COUNTS_QUERY, RAW_QUERY, apply_window_counts, apply_window_users, progress_key
from clickstream.schema import window_label, window_start_ms
from clickstream.spark.metrics import StreamingMetrics
from clickstream.spark.transforms import dead_letters, invalid_events, valid_events, window_users

log = logging.getLogger(__name__)


class _RedisSink:
    """A foreachBatch sink holding one Redis client, opened on first use (on the driver)."""

    def __init__(self, redis_url: str, metrics: StreamingMetrics | None = None) -> None:
        self.redis_url = redis_url
        self.metrics = metrics or StreamingMetrics("")
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(self.redis_url)
        return self._client


class WindowCountsSink(_RedisSink):
    """Absolute per-page window counts (Spark's running totals) into ``click_count:<page>`` and friends."""

    def __init__(self, redis_url: str, retention_ms: int | None, metrics: StreamingMetrics | None = None) -> None:
        super().__init__(redis_url, metrics)
        self.retention_ms = retention_ms

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = [(r.page, r.window_start_ms, r["count"]) for r in batch.collect()]
        with self.metrics.timed(COUNTS_QUERY, "redis_write"):
            expired = apply_window_counts(self.client, rows, self.retention_ms)
        log.info("batch %d: %d window cells written, %d windows expired", batch_id, len(rows), expired)


class RawEventsSink(_RedisSink):
    """Dead letters to Kafka (original bytes, reason in headers) and each window's users to a HyperLogLog.

    Dead letters are at-least-once: a batch replayed after a crash writes its dead letters again, with
    the same source partition and offset in their headers, by which a reader can drop the repeats.
    """

    def __init__(
        self, redis_url: str, bootstrap_servers: str, dead_letter_topic: str, metrics: StreamingMetrics | None = None
    ) -> None:
        super().__init__(redis_url, metrics)
        self.bootstrap_servers = bootstrap_servers
        self.dead_letter_topic = dead_letter_topic

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            letters = dead_letters(invalid_events(batch))
            dead = letters.count()
            if dead:
                (
                    letters.write.format("kafka")
                    .option("kafka.bootstrap.servers", self.bootstrap_servers)
                    .option("kafka.acks", "all")
                    .option("topic", self.dead_letter_topic)
                    .save()
                )
            users: dict[int, list[str]] = defaultdict(list)
            for row in window_users(valid_events(batch)).collect():
                users[row.window_start_ms].append(row.user_id)
            with self.metrics.timed(RAW_QUERY, "redis_write"):
                apply_window_users(self.client, users)
            self.metrics.incr(RAW_QUERY, "dead_letters", dead)
            log.info("batch %d: %d dead letters, users for %d windows", batch_id, dead, len(users))
        finally:
            batch.unpersist()


class RedisProgressListener(StreamingQueryListener):
    """Writes each query's latest progress to ``clickstream:progress:<query>`` for supervisors and SLA checks."""

    def __init__(self, redis_url: str, metrics: StreamingMetrics | None = None) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.metrics = metrics or StreamingMetrics("")
        self._names: dict[str, str] = {}  # idle and terminated events carry the query's id, not its name

    def _key(self, query_id: Any, name: str | None = None) -> str:
        return progress_key(name or self._names.get(str(query_id), str(query_id)))

    def onQueryStarted(self, event: Any) -> None:
        self._names[str(event.id)] = event.name or str(event.id)
        key = self._key(event.id)
        pipe = self.client.pipeline()  # a fresh hash: nothing from a previous run (its error, its state) lingers
        pipe.delete(key)
        pipe.hset(key, mapping={"run_id": str(event.runId), "started_ms": int(time.time() * 1000), "state": "running"})
        pipe.execute()

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        event_time = progress.eventTime or {}
        fields: dict[str, Any] = {
            "batch_id": progress.batchId,
            "input_rows": progress.numInputRows,
            "input_rows_per_s": round(progress.inputRowsPerSecond or 0.0, 1),
            "processed_rows_per_s": round(progress.processedRowsPerSecond or 0.0, 1),
            "batch_duration_ms": (progress.durationMs or {}).get("triggerExecution", 0),
            "updated_ms": int(time.time() * 1000),
            "state": "running",
        }
        if event_time.get("watermark"):
            fields["watermark"] = event_time["watermark"]
        if event_time.get("max"):
            newest = _iso_to_ms(event_time["max"])
            fields["newest_event_ms"] = newest
            fields["newest_window"] = window_label(window_start_ms(newest))
        self.client.hset(self._key(progress.id, progress.name), mapping=fields)
        self.metrics.progress(progress.name or str(progress.id), progress)

    def onQueryIdle(self, event: Any) -> None:
        # Alive with nothing to read: supervisors must not mistake a quiet topic for a stalled job.
        self.client.hset(self._key(event.id), mapping={"idle_ms": int(time.time() * 1000), "state": "idle"})
        self.metrics.heartbeat(self._names.get(str(event.id), str(event.id)))

    def onQueryTerminated(self, event: Any) -> None:
        state = "failed" if event.exception else "stopped"
        fields = {"state": state, "terminated_ms": int(time.time() * 1000)}
        if event.exception:
            fields["error"] = str(event.exception)[:2000]
        self.client.hset(self._key(event.id), mapping=fields)


def _iso_to_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
