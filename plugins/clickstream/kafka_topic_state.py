"""Which Kafka a topic lives on, which incarnation of it, and the offsets its partitions hold now.

A topic's name outlives its data: a topic deleted and re-created, or the same name on another cluster,
starts its offsets again from 0. Kafka's cluster id and the topic's id (a UUID given at creation) tell
them apart, so the offsets the pipeline has counted are kept under the topic's id, and a checkpoint
remembers both ids. Plain confluent-kafka, so the operators (through their hook) and a Spark driver use it
alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class TopicNotFound(LookupError):
    """The topic does not exist on the cluster the client reached."""


@dataclass(frozen=True)
class TopicState:
    """A topic as its cluster holds it now: ids, and each partition's ``(earliest, latest)`` offsets."""

    cluster_id: str
    topic: str
    topic_id: str
    partitions: dict[int, tuple[int, int]]

    def describe(self) -> str:
        return f"topic {self.topic} (id {self.topic_id}) on Kafka cluster {self.cluster_id}"

    def to_json(self) -> str:
        return json.dumps({"cluster_id": self.cluster_id, "topic": self.topic, "topic_id": self.topic_id})


def read_topic_state(admin: Any, topic: str, timeout_s: float = 30.0) -> TopicState:
    """The cluster id, the topic's id and its partitions' earliest and latest offsets, from an ``AdminClient``.

    Needs DESCRIBE on the topic (READ implies it), nothing on the cluster.
    """
    from confluent_kafka import KafkaException, TopicCollection, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    cluster_id = admin.list_topics(topic, timeout=timeout_s).cluster_id  # in every metadata answer: no ACL needed
    try:
        description = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[topic].result(
            timeout_s
        )
    except KafkaException as exc:
        if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
            raise TopicNotFound(f"topic {topic!r} does not exist on Kafka cluster {cluster_id}") from None
        raise
    ids = [p.id for p in description.partitions]
    bounds: dict[int, list[int]] = {p: [0, 0] for p in ids}
    for position, spec in ((0, OffsetSpec.earliest()), (1, OffsetSpec.latest())):
        futures = admin.list_offsets({TopicPartition(topic, p): spec for p in ids}, request_timeout=timeout_s)
        for tp, future in futures.items():
            bounds[tp.partition][position] = future.result(timeout_s).offset
    return TopicState(
        cluster_id=str(cluster_id),
        topic=topic,
        topic_id=str(description.topic_id),
        partitions={p: (low, high) for p, (low, high) in sorted(bounds.items())},
    )
