"""A producer built from an Airflow Kafka connection, with safe throughput-minded defaults."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

from clickstream.producing import BurstProducer

# Consumer settings that a shared connection may carry; librdkafka warns when a producer gets them.
_CONSUMER_ONLY = frozenset(
    {
        "group.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "session.timeout.ms",
        "max.poll.interval.ms",
        "enable.auto.offset.store",
        "isolation.level",
        "group.instance.id",
    }
)


class ClickstreamProducerHook(KafkaBaseHook):
    """Returns a :class:`~clickstream.producing.BurstProducer` for the connection ``kafka_config_id``."""

    def __init__(
        self, kafka_config_id: str = KafkaBaseHook.default_conn_name, producer_config: dict[str, Any] | None = None
    ) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.overrides = dict(producer_config or {})

    def _get_client(self, config: dict[str, Any]) -> BurstProducer:
        producer_config = {k: v for k, v in config.items() if k not in _CONSUMER_ONLY}
        return BurstProducer({**producer_config, **self.overrides})

    def get_producer(self) -> BurstProducer:
        return self.get_conn
