"""What a streaming query's checkpoint says about the micro-batch it is stuck on.

Spark writes a batch's Kafka offsets to ``<checkpoint>/offsets/<batch id>`` when it plans the batch, and
``<checkpoint>/commits/<batch id>`` once the batch is done. A batch planned and never committed is the one
a failed job was running, and the one it replays on restart: when a job keeps failing, its supervisor names
that batch and its offsets, so that whoever reads the failure knows which records to look at.

Reads a checkpoint on a local file system (where the supervisor launched the job).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The counts query's folder under the streaming application's --checkpoint-dir.
COUNTS_CHECKPOINT = "counts"
# Where a Kafka source keeps the offsets its first batch started from, under a query's checkpoint.
KAFKA_INITIAL_OFFSETS = "sources/0/0"

Offsets = dict[str, dict[str, int]]  # topic -> partition -> offset


@dataclass(frozen=True)
class StuckBatch:
    """The batch a query will run next: its id, where it starts, and where it ends once planned."""

    batch_id: int
    start: Offsets | None  # None: the query's starting offsets (no batch committed yet)
    end: Offsets | None  # None: not planned yet (the job failed while planning it)

    def describe(self) -> str:
        """``micro-batch 7 (events[0] offsets 1000-1999, events[1] offsets 980-1999)``, as far as is known."""
        topics = sorted({*(self.start or {}), *(self.end or {})})
        parts = []
        for topic in topics:
            start, end = (self.start or {}).get(topic, {}), (self.end or {}).get(topic, {})
            for partition in sorted({*start, *end}, key=int):
                first, until = start.get(partition), end.get(partition)
                if until is None:
                    parts.append(f"{topic}[{partition}] from offset {first}")
                elif first is None:
                    parts.append(f"{topic}[{partition}] offsets up to {until - 1}")
                elif first < until:  # else nothing of this partition is in the batch
                    parts.append(f"{topic}[{partition}] offsets {first}-{until - 1}")
        planned = "" if self.end is not None else ", not planned yet"
        return f"micro-batch {self.batch_id} ({', '.join(parts) or 'no offsets known'}{planned})"


def _batch_ids(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def read_offsets(path: Path) -> Offsets | None:
    """The Kafka offsets in one offsets-log file; None when there is no such file."""
    try:
        return parse_offsets(path.read_text().splitlines())
    except OSError:
        return None


def parse_offsets(lines: list[str], skip: int = 2) -> Offsets:
    """The Kafka offsets of an offsets-log file's lines: a version line, batch metadata, then a line per source.

    With ``skip=1``, of a Kafka source's initial-offsets file (a version line, then the offsets).
    """
    offsets: Offsets = {}
    for line in lines[skip:]:
        if line.strip() in ("", "-"):
            continue
        try:
            source = json.loads(line)
        except ValueError:
            continue
        if isinstance(source, dict):
            for topic, partitions in source.items():
                if isinstance(partitions, dict):
                    offsets[topic] = {str(p): int(o) for p, o in partitions.items()}
    return offsets


def stuck_batch(query_checkpoint: str | Path) -> StuckBatch | None:
    """The batch the query at ``query_checkpoint`` failed on, or will run next; None without a checkpoint."""
    root = Path(query_checkpoint)
    planned, committed = _batch_ids(root / "offsets"), _batch_ids(root / "commits")
    if not planned and not committed:
        return None
    last_commit = max(committed, default=-1)
    if planned and planned[-1] > last_commit:
        batch_id = planned[-1]
        end = read_offsets(root / "offsets" / str(batch_id))
    else:
        batch_id, end = last_commit + 1, None
    previous = root / "offsets" / str(batch_id - 1)
    start = read_offsets(previous) if batch_id > 0 else None
    return StuckBatch(batch_id, start, end)


def initial_offsets(query_checkpoint: str | Path) -> Offsets | None:
    """The offsets the query's first batch started from (its Kafka source's initial offsets); None if unwritten."""
    try:
        lines = (Path(query_checkpoint) / KAFKA_INITIAL_OFFSETS).read_text().splitlines()
    except OSError:
        return None
    return parse_offsets(lines, skip=1)


def batch_start(query_checkpoint: str | Path, batch_id: int) -> Offsets | None:
    """Where micro-batch ``batch_id`` starts: the end of the batch before it, or the initial offsets for batch 0."""
    if batch_id == 0:
        return initial_offsets(query_checkpoint)
    return read_offsets(Path(query_checkpoint) / "offsets" / str(batch_id - 1))


def resume_position(query_checkpoint: str | Path) -> Offsets | None:
    """Where the query goes on from: the end of its last committed batch, or its initial offsets when it
    committed none; None when it has read nothing (no checkpoint, or one Spark would start afresh)."""
    root = Path(query_checkpoint)
    committed = _batch_ids(root / "commits")
    if committed:
        return read_offsets(root / "offsets" / str(committed[-1]))
    return initial_offsets(root)


# Beside the query's folder: which Kafka cluster and which incarnation of the topic the checkpoint was written
# against. Spark's own offsets name the topic only.
ORIGIN_FILE = "kafka-origin.json"


@dataclass(frozen=True)
class Origin:
    cluster_id: str
    topic: str
    topic_id: str


def read_origin(checkpoint: str | Path) -> Origin | None:
    try:
        data = json.loads((Path(checkpoint) / ORIGIN_FILE).read_text())
        return Origin(str(data["cluster_id"]), str(data["topic"]), str(data["topic_id"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_origin(checkpoint: str | Path, origin: Origin) -> None:
    root = Path(checkpoint)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{ORIGIN_FILE}.tmp"
    tmp.write_text(json.dumps({"cluster_id": origin.cluster_id, "topic": origin.topic, "topic_id": origin.topic_id}))
    tmp.replace(root / ORIGIN_FILE)
