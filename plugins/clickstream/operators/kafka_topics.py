"""Create the events topic and its dead-letter topic, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from clickstream.defaults import DEAD_LETTER_RETENTION_MS, TOPIC_RETENTION_MS
from clickstream.hooks.kafka_topics import KafkaTopicsHook, TopicConfigMismatch, TopicSpec
from clickstream.schema import DEAD_LETTER_TOPIC, TOPIC


class CreateClickstreamTopicsOperator(BaseOperator):
    """Ensure ``topic`` and ``dead_letter_topic`` exist with the given settings.

    An existing topic with the same settings succeeds; one with other settings fails the task with
    each difference and how to fix it (partitions are increased only with ``allow_partition_increase``).
    Returns ``{topic: "created" | "unchanged" | "partitions_increased"}``.

    :param topic: The events topic to ensure. (templated) Default: ``"clickstream-events"``.
    :param dead_letter_topic: The dead-letter topic to ensure beside it; ``None`` or empty leaves it out.
        (templated) Default: ``"clickstream-events-dlq"``.
    :param partitions: The number of partitions of ``topic``. (templated) Default: ``3``.
    :param replication_factor: The replication factor of both topics. Default: ``None``, the brokers'
        ``default.replication.factor`` (1 on the single-node stack, 3 on the cluster topology).
    :param min_insync_replicas: The topics' ``min.insync.replicas``: how many replicas must have a write
        before a producer with ``acks=all`` hears it succeeded. Default: ``None``, the brokers' own (1 on one
        node, 2 on the cluster).
    :param retention_ms: The ``retention.ms`` of ``topic``, in milliseconds. (templated)
        Default: ``604800000`` (7 days).
    :param cleanup_policy: The ``cleanup.policy`` of ``topic``: ``"delete"``, ``"compact"`` or both
        (``"compact,delete"``); the dead-letter topic always uses ``"delete"``. Default: ``"delete"``.
    :param dead_letter_partitions: The number of partitions of the dead-letter topic. Default: ``1``.
    :param dead_letter_retention_ms: The ``retention.ms`` of the dead-letter topic, in milliseconds.
        Default: ``1209600000`` (14 days).
    :param allow_partition_increase: Whether an existing topic with fewer partitions than asked gets
        partitions added (which remaps keys to partitions) instead of failing the task. Default: ``False``.
    :param kafka_config_id: The Airflow Kafka connection to reach the brokers through. (templated)
        Default: ``"kafka_default"``.
    """

    template_fields: Sequence[str] = ("topic", "dead_letter_topic", "partitions", "retention_ms", "kafka_config_id")
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        topic: str = TOPIC,
        dead_letter_topic: str | None = DEAD_LETTER_TOPIC,
        partitions: int = 3,
        replication_factor: int | None = None,
        min_insync_replicas: int | None = None,
        retention_ms: int = TOPIC_RETENTION_MS,
        cleanup_policy: str = "delete",
        dead_letter_partitions: int = 1,
        dead_letter_retention_ms: int = DEAD_LETTER_RETENTION_MS,
        allow_partition_increase: bool = False,
        kafka_config_id: str = "kafka_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas
        self.retention_ms = retention_ms
        self.cleanup_policy = cleanup_policy
        self.dead_letter_partitions = dead_letter_partitions
        self.dead_letter_retention_ms = dead_letter_retention_ms
        self.allow_partition_increase = allow_partition_increase
        self.kafka_config_id = kafka_config_id

    def specs(self, replication_factor: int = 1, min_insync_replicas: int = 1) -> list[TopicSpec]:
        """The topics to ensure; ``replication_factor`` and ``min_insync_replicas`` apply where not given."""
        try:
            replicas = int(self.replication_factor if self.replication_factor is not None else replication_factor)
            in_sync = (
                int(self.min_insync_replicas)
                if self.min_insync_replicas is not None
                # The brokers' default, but never more than this topic's replicas (RF 1 asked on a cluster).
                else min(int(min_insync_replicas), replicas)
            )
            if not 1 <= in_sync <= replicas:
                raise ValueError(
                    f"min_insync_replicas must be between 1 and the replication factor {replicas}, got {in_sync}"
                )
            configs = {"min.insync.replicas": str(in_sync)}
            specs = [
                TopicSpec(
                    self.topic,
                    int(self.partitions),
                    replicas,
                    int(self.retention_ms),
                    self.cleanup_policy,
                    configs,
                )
            ]
            if self.dead_letter_topic:
                # Dead letters are kept longer: someone has to look at them before they expire.
                specs.append(
                    TopicSpec(
                        self.dead_letter_topic,
                        int(self.dead_letter_partitions),
                        replicas,
                        int(self.dead_letter_retention_ms),
                        "delete",
                        configs,
                    )
                )
        except ValueError as exc:
            raise AirflowFailException(f"invalid topic settings: {exc}") from None
        return specs

    def execute(self, context: Any) -> dict[str, str]:
        hook = KafkaTopicsHook(kafka_config_id=self.kafka_config_id)
        defaults = (1, 1)
        if self.replication_factor is None or self.min_insync_replicas is None:
            defaults = hook.replication_defaults()
            self.log.info("The brokers' defaults: replication factor %d, min.insync.replicas %d", *defaults)
        try:
            outcome = hook.ensure_topics(self.specs(*defaults), allow_partition_increase=self.allow_partition_increase)
        except TopicConfigMismatch as exc:
            raise AirflowFailException(str(exc)) from None
        for name, what in outcome.items():
            self.log.info("%s: %s", name, what)
        return outcome
