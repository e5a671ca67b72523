"""Where a streaming job starts: what Redis has counted decides; the checkpoint only makes a restart quick.

Before a launch, the streaming operator compares three things: the checkpoint (which Kafka cluster and
topic incarnation it was written against, and where its query goes on from), the broker (the topic's
cluster id, topic id and the offsets it holds) and Redis (the offsets counting has reached, per topic id).
:func:`plan_start` turns them into one decision, or a :class:`CannotResume` that says what was found and
the command that fixes it, so no job is launched that cannot succeed. Pure logic, tested without services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from clickstream.kafka_topic_state import TopicState
from clickstream.redis_layout import offsets_key
from clickstream.spark.checkpoint import Offsets, Origin

KEEP, FRESH, SET_ASIDE = "keep", "fresh", "set_aside"


class CannotResume(RuntimeError):
    """No start counts every event once: the message says what was found and how to go on."""


@dataclass(frozen=True)
class StartPlan:
    """What the operator does with the checkpoint, what the job starts from, and the line it logs."""

    action: str  # KEEP: resume from the checkpoint; FRESH: no checkpoint; SET_ASIDE: rename it, start afresh
    starting_offsets: str  # Spark's startingOffsets, used by a query with no offsets of its own yet
    summary: str


def _offsets_text(offsets: dict[int, int]) -> str:
    return ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "none"


def foreign_reason(topic: TopicState, origin: Origin | None, position: Offsets | None) -> str | None:
    """Why a checkpoint belongs to another Kafka cluster or another incarnation of the topic; None if it may not."""
    if origin is not None and origin.cluster_id != topic.cluster_id:
        return f"it was written against Kafka cluster {origin.cluster_id}, and the broker is cluster {topic.cluster_id}"
    if origin is not None and origin.topic_id != topic.topic_id:
        return (
            f"it was written against topic {origin.topic} with id {origin.topic_id}, and {topic.topic} now has id "
            f"{topic.topic_id} (deleted and re-created)"
        )
    if position is None:
        return None
    if set(position) != {topic.topic}:
        return f"it holds offsets of {', '.join(sorted(position)) or 'no topic'}, not of {topic.topic}"
    for partition, offset in sorted((int(p), o) for p, o in position[topic.topic].items()):
        if partition not in topic.partitions:
            return f"it reads partition {partition}, which {topic.topic} does not have ({len(topic.partitions)})"
        latest = topic.partitions[partition][1]
        if offset > latest:
            return f"it goes on from offset {offset} of partition {partition}, past the {latest} the broker holds"
    return None


def _record_loss_command(topic: TopicState, offsets: dict[int, int]) -> str:
    pairs = " ".join(f"{p} {o}" for p, o in sorted(offsets.items()))
    return f"redis-cli --user writer HSET {offsets_key(topic.topic_id)} {pairs}"


def _from_counted(topic: TopicState, counted: dict[int, int], starting_offsets: str) -> tuple[str, str]:
    """Spark's startingOffsets from what Redis has counted (or ``starting_offsets`` when it has counted nothing),
    and how it is said."""
    if not counted:
        return starting_offsets, f"Redis holds no offsets for {topic.describe()}: starting from {starting_offsets}"
    lost = {
        p: topic.partitions[p][0] for p, o in counted.items() if p in topic.partitions and o < topic.partitions[p][0]
    }
    if lost:
        ranges = ", ".join(f"partition {p} offsets {counted[p]}-{e - 1}" for p, e in sorted(lost.items()))
        raise CannotResume(
            f"Redis has counted {topic.describe()} up to offsets {_offsets_text(counted)}, but Kafka no longer holds "
            f"{ranges} (deleted by retention before they were counted): those events cannot be counted now. To go on "
            f"from what Kafka holds, record the loss in Redis ({_record_loss_command(topic, lost)}), then run the "
            "task again"
        )
    past = {p: o for p, o in counted.items() if p in topic.partitions and o > topic.partitions[p][1]}
    if past:
        raise CannotResume(
            f"Redis has counted {topic.describe()} up to offsets {_offsets_text(counted)}, past what the broker holds "
            f"({_offsets_text({p: topic.partitions[p][1] for p in past})}): the topic lost records it had "
            f"acknowledged (an unclean leader election?). Check the topic; to count from where it is now, set "
            f"{_record_loss_command(topic, {p: topic.partitions[p][1] for p in past})}, then run the task again"
        )
    # Every partition named: Spark requires it; -2 is a partition Redis has not counted yet (added since).
    start = {topic.topic: {str(p): counted.get(p, -2) for p in sorted(topic.partitions)}}
    return json.dumps(start), f"starting from the offsets Redis has counted ({_offsets_text(counted)})"


def plan_start(
    checkpoint: str,
    topic: TopicState,
    origin: Origin | None,
    position: Offsets | None,
    counted: dict[int, int],
    starting_offsets: str,
) -> StartPlan:
    """Decide how a job on ``topic`` starts, given its checkpoint (``origin`` and ``position`` as read from it,
    None when absent) and ``counted``, the offsets Redis has counted for the topic's id.

    - no checkpoint: start from ``counted``; from ``starting_offsets`` when Redis has counted nothing;
    - a checkpoint of another cluster or topic incarnation, or one that goes on from records Kafka no longer
      holds but Redis has counted: set it aside, then as with none;
    - a checkpoint behind or ahead of ``counted``: keep it (the sink skips what Redis has counted; a Redis that
      came back older is recounted from Kafka);
    - records neither counted nor held by Kafka any more: :class:`CannotResume`.
    """
    reason = foreign_reason(topic, origin, position)
    if reason is None and position is not None:
        offsets = {int(p): o for p, o in position[topic.topic].items()}
        gone = {p: o for p, o in offsets.items() if o < topic.partitions[p][0]}
        if gone and all(counted.get(p, -1) >= topic.partitions[p][0] for p in gone):
            reason = (
                f"it goes on from offsets {_offsets_text(gone)}, which Kafka no longer holds, and Redis has counted "
                f"past them ({_offsets_text(counted)})"
            )
        elif gone:
            held = {p: topic.partitions[p][0] for p in gone}
            raise CannotResume(
                f"the checkpoint {checkpoint} goes on from offsets {_offsets_text(gone)} of {topic.describe()}, but "
                f"Kafka holds them only from {_offsets_text(held)} (deleted by retention before they were counted), "
                f"and Redis has counted up to {_offsets_text(counted)}: those events cannot be counted now. To go on "
                f"from what Kafka holds, set the checkpoint aside (mv {checkpoint} {checkpoint}.lost) and record the "
                f"loss in Redis ({_record_loss_command(topic, {**counted, **held})}), then run the task again"
            )
        else:
            return StartPlan(KEEP, _keep_offsets(topic, counted, starting_offsets), _keep_summary(offsets, counted))
    if reason is not None:
        starting, how = _from_counted(topic, counted, starting_offsets)
        return StartPlan(SET_ASIDE, starting, f"set aside the checkpoint {checkpoint}: {reason}; {how}")
    starting, how = _from_counted(topic, counted, starting_offsets)
    return StartPlan(FRESH, starting, f"no checkpoint at {checkpoint} for {topic.describe()}; {how}")


def _keep_offsets(topic: TopicState, counted: dict[int, int], starting_offsets: str) -> str:
    """What a kept checkpoint's query would start from if it had no offsets: Spark ignores it otherwise."""
    try:
        return _from_counted(topic, counted, starting_offsets)[0]
    except CannotResume:
        return starting_offsets


def _keep_summary(position: dict[int, int], counted: dict[int, int]) -> str:
    where = f"resuming from the checkpoint at offsets {_offsets_text(position)}"
    if not counted:
        return f"{where}; Redis holds no offsets for the topic yet"
    behind = {p for p, o in position.items() if o < counted.get(p, -1)}
    ahead = {p for p, o in position.items() if o > counted.get(p, o)}
    if ahead:
        return (
            f"{where}; Redis has counted less ({_offsets_text(counted)}): it came back older, and the job recounts "
            "the difference from Kafka"
        )
    if behind:
        return (
            f"{where}; the checkpoint is behind what Redis has counted ({_offsets_text(counted)}): the job skips "
            "what Redis holds"
        )
    return f"{where}, where Redis's counts end"
