"""Kafka's principals against a real broker with SASL/SCRAM and the standard authorizer: each may do what its
part of the pipeline needs and nothing else, and a client without a valid login is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from devstack.kafka_broker import KafkaBroker

pytestmark = pytest.mark.integration

TIMEOUT_S = 10  # every cell runs at once (a refused login shows only as this timeout)
FAST = {"socket.timeout.ms": 3000, "log_level": 0, "socket.connection.setup.timeout.ms": 3000}


class Refused(Exception):
    """The broker said no (or never let the client in)."""


def produce(config: dict, topic: str) -> None:
    producer = Producer({**config, "message.timeout.ms": TIMEOUT_S * 1000, "enable.idempotence": False, **FAST})
    delivered: list[KafkaError | None] = []
    producer.produce(topic, key=b"k", value=b"{}", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(TIMEOUT_S + 2)
    if not delivered or delivered[0] is not None:
        raise Refused(delivered[0] if delivered else "no delivery report")


def consume(config: dict, topic: str, group: str) -> None:
    """Read one record from the start of ``topic``, then the offsets of consumer group ``group``.

    A refused group shows at once through the admin API; a consumer would only time out looking for its
    coordinator.
    """
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False, **FAST})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        messages = consumer.consume(1, timeout=TIMEOUT_S)
        if not messages:
            raise Refused("nothing read")
        if messages[0].error() is not None:
            raise Refused(messages[0].error())
    except KafkaException as error:
        raise Refused(error) from None
    finally:
        consumer.close()
    wanted = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    admin_call(config, lambda a: a.list_consumer_group_offsets(wanted, request_timeout=TIMEOUT_S))


def admin_call(config: dict, call: Callable[[AdminClient], dict]) -> None:
    admin = AdminClient({**config, **FAST})  # kept until its futures are done: a collected client cancels them
    try:
        for future in call(admin).values():
            future.result(TIMEOUT_S)
    except (KafkaException, TimeoutError) as error:
        raise Refused(error) from None


def describe(config: dict, topic: str) -> None:
    try:
        metadata = AdminClient({**config, **FAST}).list_topics(topic, timeout=TIMEOUT_S).topics[topic]
    except KafkaException as error:
        raise Refused(error) from None
    if metadata.error is not None:
        raise Refused(metadata.error)


def actions(events: str, dead_letters: str, victim: str) -> dict[str, Callable[[dict, str], None]]:
    """What each principal tries: (client settings, its own group prefix) -> None or Refused."""
    return {
        "describe the events topic": lambda c, g: describe(c, events),
        "write events": lambda c, g: produce(c, events),
        "read events (own group)": lambda c, g: consume(c, events, f"{g}-test"),
        "write dead letters": lambda c, g: produce(c, dead_letters),
        "read dead letters": lambda c, g: consume(c, dead_letters, f"{g}-test"),
        "read events (other group)": lambda c, g: consume(c, events, f"other-{uuid.uuid4().hex[:6]}"),
        "create a topic": lambda c, g: admin_call(
            c,
            lambda a: a.create_topics(
                [NewTopic(f"clickstream-test-new-{uuid.uuid4().hex[:8]}", 1, 1)], request_timeout=TIMEOUT_S
            ),
        ),
        "alter a topic's config": lambda c, g: admin_call(
            c,
            lambda a: a.incremental_alter_configs(
                [
                    ConfigResource(
                        ConfigResource.Type.TOPIC,
                        victim,
                        incremental_configs=[
                            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
                        ],
                    )
                ],
                request_timeout=TIMEOUT_S,
            ),
        ),
        "delete a topic": lambda c, g: admin_call(c, lambda a: a.delete_topics([victim], request_timeout=TIMEOUT_S)),
    }


ALLOWED = {
    "admin": {"describe the events topic", "create a topic", "alter a topic's config"},
    "producer": {"describe the events topic", "write events"},
    "streaming": {"describe the events topic", "read events (own group)", "write dead letters"},
    "reconciler": {"describe the events topic", "read events (own group)", "read dead letters"},
}
GROUPS = {"streaming": "clickstream-streaming", "reconciler": "clickstream-reconciler"}


def test_each_principal_may_do_exactly_what_its_role_needs(kafka_broker: KafkaBroker, topic_factory):
    events = topic_factory("acl", partitions=1)
    dead_letters = topic_factory("acl-dlq", partitions=1, dead_letters_of=events)
    ops = kafka_broker.client_config("ops")
    for topic in (events, dead_letters):  # something to read
        produce(ops, topic)
    principals = {user: kafka_broker.client_config(user) for user in ALLOWED}
    principals["no login"] = {"bootstrap.servers": kafka_broker.bootstrap_servers}
    wrong_password = kafka_broker.client_config("producer")
    wrong_password["sasl.password"] = "not-the-password"
    principals["producer, wrong password"] = wrong_password
    victims = {principal: topic_factory("acl-victim", partitions=1) for principal in principals}  # one each

    def attempt(principal: str, action: str) -> tuple[str, str]:
        try:
            actions(events, dead_letters, victims[principal])[action](
                principals[principal], GROUPS.get(principal, "clickstream-test")
            )
            return "allowed", ""
        except Refused as refusal:
            return "refused", str(refusal)

    # Every cell at once: a refused login only shows as a timeout, and in turn they would take minutes.
    cells = [(principal, action) for principal in principals for action in actions(events, dead_letters, events)]
    with ThreadPoolExecutor(max_workers=len(cells)) as pool:
        outcomes = dict(zip(cells, pool.map(lambda cell: attempt(*cell), cells), strict=True))
    table = {principal: {action: outcomes[principal, action][0] for _, action in cells if _ == principal}
             for principal in principals}  # fmt: skip
    wrong = [
        f"{principal}: {action} {outcome}" + (f" ({reason})" if reason else "")
        for (principal, action), (outcome, reason) in outcomes.items()
        if (outcome == "allowed") != (action in ALLOWED.get(principal, set()))
    ]

    names = list(actions(events, dead_letters, events))
    width = max(map(len, names))
    print(f"\n{'Kafka':<{width}}  " + "  ".join(f"{p:<10}" for p in table))
    for action in names:
        print(f"{action:<{width}}  " + "  ".join(f"{table[p][action]:<{max(10, len(p))}}" for p in table))
    assert not wrong, wrong
