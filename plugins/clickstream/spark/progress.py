"""Each streaming query's progress, written to Redis as it happens, for the supervising trigger and the SLA checks.

A query that reports nothing for too long is stalled; one that reports idle is alive with nothing to read.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from pyspark.sql.streaming import StreamingQueryListener

from clickstream.redis_layout import progress_key
from clickstream.spark.isolation import short_error
from clickstream.spark.metrics import StreamingMetrics, offsets_behind_latest


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
        behind = offsets_behind_latest(progress)  # records behind Kafka's end, when the source reports it
        if behind is not None:
            fields["offsets_behind_latest"] = int(behind)
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
            # What went wrong first (the root cause, not py4j's wrapping), then the whole story, cut short.
            fields["error"] = f"{short_error(event.exception)}\n{str(event.exception)[:2000]}"
        self.client.hset(self._key(event.id), mapping=fields)
