"""Reading the micro-batch a query is stuck on from its checkpoint (files as Spark writes them)."""

from __future__ import annotations

import json
from pathlib import Path

from clickstream.spark.checkpoint import StuckBatch, parse_offsets, stuck_batch

METADATA = '{"batchWatermarkMs":0,"batchTimestampMs":1765000000000,"conf":{}}'


def offsets_file(root: Path, batch_id: int, offsets: dict) -> None:
    (root / "offsets").mkdir(parents=True, exist_ok=True)
    (root / "offsets" / str(batch_id)).write_text(f"v1\n{METADATA}\n{json.dumps(offsets)}")


def commit_file(root: Path, batch_id: int) -> None:
    (root / "commits").mkdir(parents=True, exist_ok=True)
    (root / "commits" / str(batch_id)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_a_batch_planned_and_never_committed_is_the_stuck_one_with_its_offsets(tmp_path):
    offsets_file(tmp_path, 0, {"events": {"0": 500, "1": 480}})
    commit_file(tmp_path, 0)
    offsets_file(tmp_path, 1, {"events": {"0": 1000, "1": 480}})
    stuck = stuck_batch(tmp_path)
    assert stuck == StuckBatch(1, {"events": {"0": 500, "1": 480}}, {"events": {"0": 1000, "1": 480}})
    assert stuck.describe() == "micro-batch 1 (events[0] offsets 500-999)"  # partition 1 has nothing in it


def test_a_batch_not_planned_yet_starts_where_the_last_committed_one_ended(tmp_path):
    offsets_file(tmp_path, 0, {"events": {"0": 500}})
    commit_file(tmp_path, 0)
    assert stuck_batch(tmp_path).describe() == "micro-batch 1 (events[0] from offset 500, not planned yet)"


def test_the_first_batch_starts_from_the_querys_starting_offsets(tmp_path):
    offsets_file(tmp_path, 0, {"events": {"0": 500}})
    assert stuck_batch(tmp_path).describe() == "micro-batch 0 (events[0] offsets up to 499)"


def test_no_checkpoint_says_nothing(tmp_path):
    assert stuck_batch(tmp_path / "missing") is None


def test_a_kafka_sources_initial_offsets_file_reads_too():
    # Spark's Kafka source writes a zero byte, a version line, then the offsets.
    assert parse_offsets(["\x00v1", '{"events":{"0":0,"1":7}}'], skip=1) == {"events": {"0": 0, "1": 7}}


def test_a_query_resumes_from_its_last_committed_batch_or_its_initial_offsets(tmp_path):
    from clickstream.spark.checkpoint import resume_position

    assert resume_position(tmp_path) is None  # nothing read yet
    (tmp_path / "sources" / "0").mkdir(parents=True)
    (tmp_path / "sources" / "0" / "0").write_text('v1\n{"events":{"0":300,"1":0}}')
    assert resume_position(tmp_path) == {"events": {"0": 300, "1": 0}}
    offsets_file(tmp_path, 0, {"events": {"0": 500, "1": 480}})
    commit_file(tmp_path, 0)
    offsets_file(tmp_path, 1, {"events": {"0": 1000, "1": 480}})  # planned, not committed: replayed from 0's end
    assert resume_position(tmp_path) == {"events": {"0": 500, "1": 480}}


def test_the_origin_file_round_trips_and_a_broken_one_reads_as_none(tmp_path):
    from clickstream.spark.checkpoint import ORIGIN_FILE, Origin, read_origin, write_origin

    assert read_origin(tmp_path / "none") is None
    write_origin(tmp_path / "ckpt", Origin("cluster-A", "events", "id-1"))
    assert read_origin(tmp_path / "ckpt") == Origin("cluster-A", "events", "id-1")
    (tmp_path / "ckpt" / ORIGIN_FILE).write_text("{not json")
    assert read_origin(tmp_path / "ckpt") is None
