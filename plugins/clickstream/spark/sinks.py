"""Where the streaming queries' micro-batches go: Redis (counts, users, progress) and the dead-letter topic.

The sink is a callable for ``foreachBatch``; it runs on the driver, writes each batch to Redis in one
atomic round trip, and applies a batch at most once, so a batch that Spark replays after a crash changes
nothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from clickstream.redis_layout import COUNTS_QUERY, apply_batch, commit_key, progress_key, read_commit
from clickstream.schema import WINDOW_MS, window_label, window_start_ms
from clickstream.spark.metrics import StreamingMetrics
from clickstream.spark.transforms import batch_summary, compact, dead_letters, invalid_events

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


class PageViewsSink(_RedisSink):
    """Each micro-batch of parsed records: dead letters to Kafka, then views and users to Redis, at most once.

    Spark hands ``foreachBatch`` the same records under the same batch id when it replays a batch after a
    crash. The Redis write is one script that adds the batch's views per page and window and records the
    batch id with them (:func:`~clickstream.redis_layout.apply_batch`), so a replay changes nothing and
    the counts are exactly once with no window state kept in Spark. The watermark lives in that same
    commit: an event whose window closed (ended at or before the watermark) is late and is not counted;
    the reconciler finds and repairs those. Dead letters are at least once: a batch replayed after a crash
    writes its dead letters again, with the same source partition and offset in their headers, by which
    a reader can drop the repeats.
    """

    def __init__(
        self,
        redis_url: str,
        bootstrap_servers: str,
        dead_letter_topic: str,
        watermark_delay_ms: int,
        retention_ms: int | None,
        metrics: StreamingMetrics | None = None,
        query_name: str = COUNTS_QUERY,
    ) -> None:
        super().__init__(redis_url, metrics)
        self.bootstrap_servers = bootstrap_servers
        self.dead_letter_topic = dead_letter_topic
        self.watermark_delay_ms = watermark_delay_ms
        self.retention_ms = retention_ms
        self.query_name = query_name
        self._commit_key: str | None = None
        self._expect_dead = False  # judged from the previous batch

    def commit_key(self) -> str:
        """Keyed by the query's id, which its checkpoint keeps across restarts; a new checkpoint starts afresh."""
        if self._commit_key is None:
            # The application's own session: a batch's DataFrame belongs to a clone that lists no queries.
            ids = [q.id for q in SparkSession.builder.getOrCreate().streams.active if q.name == self.query_name]
            if len(ids) != 1:
                raise RuntimeError(f"expected one active streaming query named {self.query_name}, found {len(ids)}")
            self._commit_key = commit_key(ids[0])
        return self._commit_key

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        key = self.commit_key()
        commit = read_commit(self.client, key)
        if commit.batch_id is not None and batch_id <= commit.batch_id:
            log.info("batch %d: already applied to Redis (replayed after a restart); skipped", batch_id)
            return
        records = compact(batch)
        # Caching the batch costs about half again its parsing, so it is done only when the previous batch
        # had dead letters: sending them is a second pass, which then reads the cache, not Kafka again.
        cached = self._expect_dead
        if cached:
            records = records.persist()
        try:
            figures = BatchFigures.of(batch_summary(records), commit.watermark_ms)
            if figures.dead:
                self._send_dead_letters(invalid_events(records))
        finally:
            if cached:
                records.unpersist()
        self._commit(figures, batch_id, key)

    def _send_dead_letters(self, invalid: DataFrame) -> None:
        (
            dead_letters(invalid)
            .write.format("kafka")
            .option("kafka.bootstrap.servers", self.bootstrap_servers)
            .option("kafka.acks", "all")
            .option("topic", self.dead_letter_topic)
            .save()
        )

    def _commit(self, figures: BatchFigures, batch_id: int, key: str) -> None:
        """One atomic Redis script: the views and users, the batch id and the watermark after this batch."""
        self._expect_dead = figures.dead > 0
        watermark_ms = figures.watermark_ms
        if figures.newest_ms is not None:
            watermark_ms = max(watermark_ms, figures.newest_ms - self.watermark_delay_ms)
        views = [(page, start, n) for (page, start), n in figures.views.items()]
        with self.metrics.timed(self.query_name, "redis_write"):
            applied, expired = apply_batch(
                self.client, key, batch_id, watermark_ms, views, figures.users, self.retention_ms
            )
        self.metrics.incr(self.query_name, "dead_letters", figures.dead)
        self.metrics.incr(self.query_name, "late_events", figures.late)
        log.info(
            "batch %d: %d views in %d window cells%s, %d late, %d dead letters of %d records, users for %d windows,"
            " %d expired",
            batch_id,
            sum(figures.views.values()),
            len(views),
            "" if applied else " (already applied)",
            figures.late,
            figures.dead,
            figures.records,
            len(figures.users),
            expired,
        )


@dataclass
class BatchFigures:
    """What one micro-batch adds, judged against the watermark before it (``watermark_ms``).

    A valid event whose window ended at or before the watermark is late: not counted, nor its user, but
    its time still moves the watermark on, as Spark's own would. ``users`` holds each open window's
    users as a dense Redis HyperLogLog.
    """

    watermark_ms: int
    records: int = 0
    views: dict[tuple[str, int], int] = field(default_factory=dict)
    users: dict[int, bytes] = field(default_factory=dict)
    dead: int = 0
    late: int = 0
    newest_ms: int | None = None

    @classmethod
    def of(cls, summary: dict[str, Any], watermark_ms: int) -> BatchFigures:
        """From :func:`~clickstream.spark.transforms.batch_summary`'s figures."""
        figures = cls(
            watermark_ms, summary["records"], dead=sum(summary["invalid"].values()), newest_ms=summary["newest_ms"]
        )
        for window in summary["windows"]:
            start = window["start_ms"]
            if start + WINDOW_MS > watermark_ms:
                figures.views.update(((page, start), n) for page, n in window["views"].items())
                figures.users[start] = window["users"]
            else:
                figures.late += sum(window["views"].values())
        return figures


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
            # Where a batch's time went (addBatch is the sink; the rest is Spark's own bookkeeping).
            "durations_ms": json.dumps(progress.durationMs or {}, sort_keys=True),
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
