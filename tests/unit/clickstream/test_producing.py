"""The producer's delivery timeout, which its final flush waits out (no broker needed to read it)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException

from clickstream.producing import BurstProducer

SERVERS = {"bootstrap.servers": "127.0.0.1:1"}  # never contacted: nothing here sends


@pytest.mark.parametrize(
    ("config", "seconds"),
    [
        ({}, 300.0),  # librdkafka's own default, which rides out a broker's restart
        ({"message.timeout.ms": 60_000}, 60.0),
        ({"delivery.timeout.ms": "90000"}, 90.0),  # librdkafka's other name for it wins, as in librdkafka
        ({"message.timeout.ms": 0}, 0.0),  # librdkafka's "no limit"
    ],
)
def test_the_delivery_timeout_by_either_name(config, seconds):
    assert BurstProducer({**SERVERS, **config}).delivery_timeout_s() == seconds


def test_a_delivery_timeout_that_is_not_a_number_is_refused_when_the_producer_is_made():
    with pytest.raises(KafkaException, match=r"message\.timeout\.ms"):
        BurstProducer({**SERVERS, "message.timeout.ms": "soon"})
