"""Where the streaming query's micro-batches go: Redis (counts, users) and the dead-letter topic.

The sink is a callable for ``foreachBatch``; it runs on the driver, writes each batch to Redis in one
atomic round trip, and applies a batch at most once, so a batch that Spark replays after a crash changes
nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clickstream.defaults import STREAMING_GROUP_PREFIX
from clickstream.kafka_security import kafka_options
from clickstream.redis_layout import (
    COUNTS_QUERY,
    BatchOffsets,
    Commit,
    CommitMoved,
    OffsetsMoved,
    apply_batch,
    commit_key,
    offsets_key,
    progress_key,
    read_commit,
)
from clickstream.schema import RejectReason, window_label, window_start_ms
from clickstream.spark.batch_figures import BatchFigures
from clickstream.spark.checkpoint import KAFKA_INITIAL_OFFSETS, Offsets, parse_offsets
from clickstream.spark.isolation import (
    FailingRecord,
    OffsetRange,
    TooManyFailures,
    any_of,
    find_failing_records,
    short_error,
)
from clickstream.spark.metrics import StreamingMetrics
from clickstream.spark.parse import invalid_events, parse_events
from clickstream.spark.transforms import arrival_window, batch_summary, compact, dead_letters

log = logging.getLogger(__name__)

# Spark's errors as PySpark raises them: a task's failure reaches the driver as one of these.
_SPARK_ERRORS = (Py4JJavaError, CapturedException)
# How many times a batch looks again when Redis's commit changed between its read and its write.
MAX_COMMIT_MOVES = 3


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
    """Each micro-batch of Kafka records, parsed here: dead letters to Kafka, then views and users to Redis,
    at most once.

    Spark hands ``foreachBatch`` the same records under the same batch id when it replays a batch after a
    crash. The Redis write is one script that adds the batch's views per page and window and records, with
    them, the Kafka offsets counted per partition of the topic's id (:func:`~clickstream.redis_layout.apply_batch`).
    Before counting, a batch leaves out the records below those offsets, whichever checkpoint planned it: a
    replay, a checkpoint restored from an older copy or a new checkpoint started anywhere changes nothing
    Redis has counted, and the counts are exactly once with no window state kept in Spark. (Without the
    topic's id, the batch id is the fence, which holds for replays under one checkpoint only.) The watermark
    lives in that same commit: an event whose window closed (ended at or before the watermark) is late and
    is not counted; the reconciler finds and repairs those. Dead letters are at least once: a batch replayed
    after a crash writes its dead letters again, with the same source partition and offset in their headers,
    by which a reader can drop the repeats.

    A batch whose tally fails (a record that passed validation yet breaks the job) is bisected by offset
    (:mod:`clickstream.spark.isolation`): the records that fail alone go to the dead-letter topic with
    reason ``processing_error`` and the error, the rest count, and the stream goes on. When more records
    fail than poison explains, the batch fails with its id and offsets, and the job's supervisor decides.
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
        prepare: Callable[[DataFrame], DataFrame] = parse_events,
        query_checkpoint: str | None = None,
        topic: str | None = None,
        topic_id: str | None = None,
    ) -> None:
        super().__init__(redis_url, metrics)
        # The topic's incarnation (Kafka's topic id), whose offsets Redis records as counted; with the
        # checkpoint's offsets log, what each batch reads.
        self.topic = topic
        self.offsets_key = offsets_key(topic_id) if topic_id and topic and query_checkpoint else None
        self.prepare = prepare  # raw Kafka records -> parsed events, as parse_events does
        self.query_checkpoint = query_checkpoint  # the query's offsets log, for recounting what Redis lost
        self.bootstrap_servers = bootstrap_servers
        self.dead_letter_topic = dead_letter_topic
        self.watermark_delay_ms = watermark_delay_ms
        self.retention_ms = retention_ms
        self.query_name = query_name
        self._commit_key: str | None = None
        self._expect_dead = False  # judged from the previous batch
        self._newest_ms: int | None = None

    def commit_key(self) -> str:
        """Keyed by the query's id, which its checkpoint keeps across restarts; a new checkpoint starts afresh."""
        if self._commit_key is None:
            # The application's own session: a batch's DataFrame belongs to a clone that lists no queries.
            ids = [q.id for q in SparkSession.builder.getOrCreate().streams.active if q.name == self.query_name]
            if len(ids) != 1:
                raise RuntimeError(f"expected one active streaming query named {self.query_name}, found {len(ids)}")
            self._commit_key = commit_key(ids[0])
        return self._commit_key

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        key = self.commit_key()
        commit = read_commit(self.client, key, self.offsets_key)
        if self.offsets_key is None and commit.batch_id is not None and batch_id <= commit.batch_id:
            log.info("batch %d: already applied to Redis (replayed after a restart); skipped", batch_id)
            return
        commit = self._fill_gap(raw.sparkSession, commit, batch_id, key)
        planned = self._batch_offsets(raw.sparkSession, batch_id, commit)
        offsets: BatchOffsets | None = None
        if planned is not None:
            offsets, start = planned
            if all(first >= until for first, until in offsets.ranges.values()):
                log.info("batch %d: Redis has counted all its offsets already (%s); skipped", batch_id,
                         _ranges_text(offsets))  # fmt: skip
                self._commit(BatchFigures(commit.watermark_ms), batch_id, key, commit.batch_id, offsets)
                return
            raw = self._without_counted(raw, batch_id, commit.offsets, start)
        records = compact(self.prepare(raw))
        # Caching the batch costs about half again its parsing, so it is done only when the previous batch
        # had dead letters: sending them is a second pass, which then reads the cache, not Kafka again.
        cached = self._expect_dead
        if cached:
            records = records.persist()
        try:
            try:
                summary = batch_summary(records)
            except _SPARK_ERRORS as exc:
                if cached:
                    records.unpersist()
                    cached = False
                records, summary = self._without_failing_records(raw, batch_id, exc)
            figures = BatchFigures.of(summary, commit.watermark_ms)
            if figures.dead > summary["invalid"].get(RejectReason.PROCESSING_ERROR.value, 0):
                self._send_dead_letters(invalid_events(records))
        finally:
            if cached:
                records.unpersist()
        for _ in range(MAX_COMMIT_MOVES):
            try:
                self._commit(figures, batch_id, key, commit.batch_id, offsets)
                return
            except CommitMoved as moved:
                # Redis came back from an older copy between the read above and this write: what it lost is
                # recounted first, then this batch applies on top (its lateness judged by the restored watermark).
                log.warning("batch %d: %s; looking again before applying it", batch_id, moved)
                commit = read_commit(self.client, key, self.offsets_key)
                if self.offsets_key is None and commit.batch_id is not None and batch_id <= commit.batch_id:
                    log.info("batch %d: already applied to Redis; skipped", batch_id)
                    return
                commit = self._fill_gap(raw.sparkSession, commit, batch_id, key)
                if planned is not None and self._batch_offsets(raw.sparkSession, batch_id, commit) != planned:
                    raise BatchFailed(f"batch {batch_id}: what Redis has counted changed while the batch was "
                                      "computed; it is replayed") from moved  # fmt: skip
                figures = BatchFigures.of(summary, commit.watermark_ms)
            except OffsetsMoved as moved:
                raise BatchFailed(
                    f"batch {batch_id}: {moved}: another job counts this topic into the same Redis; stop it"
                ) from moved
        raise BatchFailed(
            f"batch {batch_id}: Redis's commit {key} changed under every one of {MAX_COMMIT_MOVES} writes"
        )

    def _batch_offsets(self, spark: SparkSession, batch_id: int, commit: Commit) -> tuple[BatchOffsets, Offsets] | None:
        """The offsets batch ``batch_id`` counts, per partition: from where it starts (or where Redis's count
        ends, if further) to where it ends; and where the checkpoint planned it to start. None without the
        topic's id or the checkpoint's offsets."""
        if self.offsets_key is None or self.topic is None:
            return None
        try:
            end = self._checkpoint_offsets(spark, f"offsets/{batch_id}")
            start = self._checkpoint_offsets(spark, f"offsets/{batch_id - 1}") if batch_id > 0 else (
                self._checkpoint_offsets(spark, KAFKA_INITIAL_OFFSETS, skip=1))  # fmt: skip
        except (OSError, *_SPARK_ERRORS) as exc:
            log.warning("batch %d: no offsets in the checkpoint (%s); the batch id is its fence", batch_id, exc)
            return None
        if self.topic not in end:
            return None
        return fenced_offsets(self.offsets_key, self.topic, start, end, commit.offsets), start

    def _without_counted(self, raw: DataFrame, batch_id: int, counted: dict[int, int], start: Offsets) -> DataFrame:
        """The batch's records that Redis has not counted (``start``: the batch's start in the checkpoint); logs
        what was left out, and any gap between Redis's count and the batch."""
        planned = {int(p): o for p, o in start.get(str(self.topic), {}).items()}
        for partition, first in sorted(planned.items()):
            held = counted.get(partition, -1)
            if 0 <= held < first:
                log.warning(
                    "batch %d: Redis has counted %s[%d] up to offset %d, and this batch starts at %d: offsets %d-%d "
                    "are not counted by this job", batch_id, self.topic, partition, held, first, held, first - 1,
                )  # fmt: skip
                self.metrics.incr(self.query_name, "uncounted_offsets", first - held)
        skipped = {p: held for p, held in counted.items() if held > planned.get(p, -1) and held > 0}
        if not skipped:
            return raw
        log.info(
            "batch %d: Redis has counted %s below offsets %s already (planned by another checkpoint or an older copy "
            "of this one): those records are left out", batch_id, self.topic,
            ", ".join(f"{p}:{o}" for p, o in sorted(skipped.items())),
        )  # fmt: skip
        return raw.where(~any_of(OffsetRange(str(self.topic), p, 0, o - 1) for p, o in skipped.items()))

    def _fill_gap(self, spark: SparkSession, commit: Commit, batch_id: int, key: str) -> Commit:
        """The commit after recounting the batches before ``batch_id`` that Redis lacks, if any."""
        first_missing = 0 if commit.batch_id is None else commit.batch_id + 1
        if first_missing < batch_id:
            return self._recount_lost_batches(spark, first_missing, batch_id - 1, commit, key)
        return commit

    def _recount_lost_batches(self, spark: SparkSession, first: int, last: int, commit: Commit, key: str) -> Commit:
        """Redis lacks batches ``first``..``last`` that Spark's checkpoint committed: recount them from Kafka.

        It happens when Redis comes back with less than it acknowledged: a failover to a replica that lagged,
        an OS crash inside the ``appendfsync everysec`` window, a restart without persistence. The commit
        hash came back as old as the counts (one script writes both), so the gap is exactly the batches
        after it; their offsets are in the checkpoint's offsets log. Seeing the gap costs nothing: the
        commit is read for every batch anyway. Events a batch then judged late may count in the recount,
        which judges them all against the restored watermark. Dead letters are not sent again.
        """
        lost = f"Redis holds micro-batches up to {commit.batch_id}, but the checkpoint committed up to {last}"
        if self.query_checkpoint is None:
            raise BatchFailed(f"{lost}; without the checkpoint's location they cannot be recounted: run the "
                              "reconciler with repair")  # fmt: skip
        try:
            start = self._checkpoint_offsets(spark, f"offsets/{first - 1}") if first > 0 else (
                self._checkpoint_offsets(spark, KAFKA_INITIAL_OFFSETS, skip=1))  # fmt: skip
            end = self._checkpoint_offsets(spark, f"offsets/{last}")
        except _SPARK_ERRORS as exc:
            raise BatchFailed(
                f"{lost}, and the checkpoint no longer holds their offsets ({short_error(exc)}): run the reconciler "
                "with repair"
            ) from exc
        log.warning("%s: recounting batches %d-%d from Kafka (%s to %s)", lost, first, last, start, end)
        partitions = {topic: sorted(int(p) for p in parts) for topic, parts in end.items()}
        raw = (
            spark.read.format("kafka")
            .options(**kafka_options(self.bootstrap_servers))
            .option("groupIdPrefix", STREAMING_GROUP_PREFIX)
            .option("assign", json.dumps(partitions))
            .option("startingOffsets", json.dumps(
                {t: {p: start.get(t, {}).get(p, -2) for p in parts} for t, parts in end.items()}))
            .option("endingOffsets", json.dumps(end))
            .load()
        )  # fmt: skip
        offsets = None
        if self.offsets_key is not None and self.topic in end:
            offsets = fenced_offsets(self.offsets_key, str(self.topic), start, end, commit.offsets)
            raw = self._without_counted(raw, last, commit.offsets, start)
        figures = BatchFigures.of(batch_summary(compact(self.prepare(raw))), commit.watermark_ms)
        # CommitMoved or OffsetsMoved: fails the batch, replayed later
        self._commit(figures, last, key, commit.batch_id, offsets)
        self.metrics.incr(self.query_name, "recounted_batches", last - first + 1)
        return read_commit(self.client, key)

    def _checkpoint_offsets(self, spark: SparkSession, name: str, skip: int = 2) -> Offsets:
        """Offsets from a file of the query's checkpoint: read here when it is a local folder, else by Spark (a
        checkpoint may be on HDFS or S3)."""
        path = f"{str(self.query_checkpoint).rstrip('/')}/{name}"
        if "://" not in path or path.startswith("file://"):
            local = path.removeprefix("file://")
            return parse_offsets(Path(local).read_text().splitlines(), skip=skip)  # OSError when absent
        return parse_offsets([row.value for row in spark.read.text(path).collect()], skip=skip)

    def _without_failing_records(
        self, raw: DataFrame, batch_id: int, exc: BaseException
    ) -> tuple[DataFrame, dict[str, Any]]:
        """Isolate what made the batch's tally fail: dead-letter it, and tally the rest.

        Works on the raw Kafka records, filtered by offset before :attr:`prepare` runs on them, so nothing
        of the failing job runs on what is left out. Returns the rest's compact records and their summary,
        with the isolated records counted under ``processing_error``.
        """
        error = short_error(exc)
        ranges = offset_ranges(raw)
        where = ", ".join(str(r) for r in ranges) or "no offsets"
        log.warning("batch %d (%s) failed: %s; looking for the records that fail it", batch_id, where, error)

        def job_error(subset: OffsetRange) -> str | None:
            try:
                batch_summary(compact(self.prepare(raw.where(subset.condition()))))
            except _SPARK_ERRORS as failure:
                return short_error(failure)
            return None

        try:
            failing = find_failing_records(ranges, job_error)
        except TooManyFailures as too_many:
            raise BatchFailed(f"batch {batch_id} ({where}) fails: {too_many}") from exc
        if not failing:
            raise BatchFailed(f"batch {batch_id} ({where}) failed, and then no part of it did: {error}") from exc
        poison = any_of(OffsetRange(f.topic, f.partition, f.offset, f.offset) for f in failing)
        records = compact(self.prepare(raw.where(~poison)))
        summary = batch_summary(records)  # fails loudly if the rest still cannot be tallied
        arrivals = self._send_failing_records(raw.where(poison), failing)
        summary["records"] += len(failing)
        invalid = summary["invalid"]
        reason = RejectReason.PROCESSING_ERROR.value
        invalid[reason] = invalid.get(reason, 0) + len(failing)
        summary.setdefault("invalid_windows", []).extend(
            {"start_ms": start, "reasons": {reason: 1}} for start in arrivals if start is not None
        )
        self.metrics.incr(self.query_name, "isolated_records", len(failing))
        log.warning(
            "batch %d: %d record(s) dead-lettered as processing_error, the rest counted: %s",
            batch_id,
            len(failing),
            "; ".join(f"{f.topic}[{f.partition}]@{f.offset}: {f.error}" for f in failing),
        )
        return records, summary

    def _send_failing_records(self, poison: DataFrame, failing: list[FailingRecord]) -> list[int | None]:
        """Their original key and bytes (raw records: nothing else is evaluated on them), with the error.
        Returns the window each reached Kafka in, as its dead letter is counted."""
        errors = {(f.topic, f.partition, f.offset): f.error for f in failing}
        arrival = arrival_window() if "timestamp" in poison.columns else F.lit(None).cast("bigint")
        rows = poison.select("key", "value", "topic", "partition", "offset", arrival.alias("arrival")).collect()
        letters = [
            (r.key, r.value, RejectReason.PROCESSING_ERROR.value, errors[(r.topic, r.partition, r.offset)],
             r.topic, r.partition, r.offset)
            for r in rows
        ]  # fmt: skip
        frame = poison.sparkSession.createDataFrame(
            letters,
            "key binary, value binary, reject_reason string, reject_detail string, topic string, partition int,"
            " offset long",
        )
        self._send_dead_letters(frame)
        return [r.arrival for r in rows]

    def _send_dead_letters(self, invalid: DataFrame) -> None:
        (
            dead_letters(invalid)
            .write.format("kafka")
            .options(**kafka_options(self.bootstrap_servers))
            .option("kafka.acks", "all")
            .option("topic", self.dead_letter_topic)
            .save()
        )

    def _commit(
        self, figures: BatchFigures, batch_id: int, key: str, after: int | None, offsets: BatchOffsets | None = None
    ) -> None:
        """One atomic Redis script: the views and users, the batch id, the watermark and the offsets counted after
        this batch, written only on top of the commit ``after`` (else :class:`~clickstream.redis_layout.CommitMoved`)
        and of the offsets the batch starts from (else :class:`~clickstream.redis_layout.OffsetsMoved`)."""
        self._expect_dead = figures.dead > 0
        watermark_ms = figures.watermark_ms
        if figures.newest_ms is not None:
            watermark_ms = max(watermark_ms, figures.newest_ms - self.watermark_delay_ms)
        views = [(page, start, n) for (page, start), n in figures.views.items()]
        with self.metrics.timed(self.query_name, "redis_write"):
            applied, expired = apply_batch(
                self.client,
                key,
                batch_id,
                watermark_ms,
                views,
                figures.users,
                self.retention_ms,
                after=after,
                dead_letters=figures.dead_by_window,
                offsets=offsets,
            )
        self._report_event_time(watermark_ms, figures.newest_ms)
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

    def _report_event_time(self, watermark_ms: int, newest_ms: int | None) -> None:
        """The watermark that decides what counts, and the newest event time seen, beside Spark's progress."""
        if newest_ms is not None:
            self._newest_ms = max(self._newest_ms or newest_ms, newest_ms)
        fields: dict[str, Any] = {"watermark_ms": watermark_ms, "watermark": _ms_to_iso(watermark_ms)}
        if self._newest_ms is not None:
            fields["newest_event_ms"] = self._newest_ms
            fields["newest_window"] = window_label(window_start_ms(self._newest_ms))
        self.client.hset(progress_key(self.query_name), mapping=fields)


class BatchFailed(RuntimeError):
    """A micro-batch that cannot be applied; the message names it, its offsets and the error."""


def offset_ranges(raw: DataFrame) -> list[OffsetRange]:
    """The Kafka offsets a micro-batch of raw records holds, per topic partition."""
    rows = (
        raw.groupBy("topic", "partition").agg(F.min("offset").alias("first"), F.max("offset").alias("last")).collect()
    )
    return sorted(OffsetRange(r.topic, r.partition, r.first, r.last) for r in rows)


def fenced_offsets(key: str, topic: str, start: Offsets, end: Offsets, counted: dict[int, int]) -> BatchOffsets:
    """What a batch from ``start`` to ``end`` (the checkpoint's offsets) counts of ``topic``, given the offsets
    Redis has ``counted``: per partition, from the later of the batch's start and Redis's count, to the later of
    the batch's end and Redis's count (a batch wholly counted already counts nothing: from == to)."""
    first, until = start.get(topic, {}), end[topic]
    ranges = {}
    for partition, offset in until.items():
        held = counted.get(int(partition), -1)
        ranges[int(partition)] = (max(first.get(partition, -1), held), max(offset, held))
    return BatchOffsets(key, topic, ranges)


def _ranges_text(offsets: BatchOffsets) -> str:
    return ", ".join(f"{offsets.topic}[{p}] to {end}" for p, (_, end) in sorted(offsets.ranges.items()))


def _ms_to_iso(ms: int) -> str:
    """Epoch ms as Spark writes event times in its progress: ``2025-06-10T05:04:00.000Z``."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
