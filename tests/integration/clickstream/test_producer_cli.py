"""`clickstream-produce` as users run it, against a real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from devstack.processes import wait_until

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "clickstream.producer_cli"]


def run(*args: str, timeout: float = 120, login: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(login or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


@pytest.fixture
def login(kafka_broker) -> dict[str, str]:
    """The producer principal's login, as a user of the CLI passes it: in the environment."""
    return {"KAFKA_SASL_USERNAME": "producer", "KAFKA_SASL_PASSWORD": kafka_broker.passwords()["producer"]}


def test_full_speed_count_prints_a_json_summary(kafka_broker, topic_factory, read_topic, login):
    topic = topic_factory("cli", partitions=3)
    result = run(
        "--bootstrap-servers",
        kafka_broker.bootstrap_servers,
        "--topic",
        topic,
        "--count",
        "5000",
        "--rps",
        "0",
        "--malformed-share",
        "0.02",
        "--json",
        login=login,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["delivery"]["sent"] == summary["delivery"]["delivered"] == 5000
    assert summary["delivery"]["latency_p50_ms"] is not None
    assert summary["ground_truth"]["valid"] + sum(summary["ground_truth"]["malformed"].values()) == 5000
    assert len(read_topic(topic)) == 5000


def test_duration_at_a_rate_is_paced_and_summarised(kafka_broker, topic_factory, login):
    topic = topic_factory("cli-paced", partitions=1)
    result = run(
        "--bootstrap-servers",
        kafka_broker.bootstrap_servers,
        "--topic",
        topic,
        "--duration",
        "2",
        "--rps",
        "250",
        "--no-progress",
        login=login,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert lines["sent"].strip() == "500" and lines["delivered"].strip() == "500"
    assert lines["failed"].strip() == "0"
    elapsed = float(lines["rate"].split("over")[1].split()[0])
    assert 1.8 <= elapsed <= 6, "500 events at 250/s take about two seconds"
    assert lines["latency"].startswith("p50")


def topic_size(kafka_broker, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka_broker.client_config("ops", **{"group.id": "size"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def test_ctrl_c_flushes_and_loses_nothing(kafka_broker, topic_factory, read_topic, login):
    topic = topic_factory("cli-interrupt", partitions=3)
    proc = subprocess.Popen(
        [*CLI, "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic, "--rps", "2000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **login},
    )
    # Interrupted mid-stream: once more than 1,000 events are in Kafka, with more on their way.
    assert wait_until(lambda: topic_size(kafka_broker, topic) > 1000, 60), proc.poll()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    delivery = json.loads(stdout)["delivery"]
    assert delivery["interrupted"] is True
    assert delivery["sent"] > 1000
    assert delivery["delivered"] == delivery["sent"] and delivery["failed"] == 0
    assert len(read_topic(topic)) == delivery["sent"]


def test_unreachable_broker_exits_non_zero_within_the_timeout():
    started = time.monotonic()
    result = run("--bootstrap-servers", "127.0.0.1:1", "--count", "10", "--connect-timeout", "3", timeout=30)
    assert result.returncode == 2
    assert "error: cannot reach Kafka at 127.0.0.1:1 within 3s" in result.stderr
    assert time.monotonic() - started < 15


def test_missing_topic_and_bad_arguments_are_clear_errors(kafka_broker):
    missing = run(  # as ops, who may see every topic: for the producer an absent topic is also a refused one
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", "absent", "--count", "1",
        login={"KAFKA_SASL_USERNAME": "ops", "KAFKA_SASL_PASSWORD": kafka_broker.passwords()["ops"]},
    )  # fmt: skip
    assert missing.returncode == 2 and "topic 'absent' is not available" in missing.stderr
    bad = run("--duration", "5", "--rps", "0")
    assert bad.returncode == 2 and "--duration needs a positive --rps" in bad.stderr


def test_a_wrong_password_or_no_login_is_a_clear_error_not_a_hang(kafka_broker, topic_factory):
    topic = topic_factory("cli-login", partitions=1)
    started = time.monotonic()
    wrong = run(
        "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic, "--count", "1",
        login={"KAFKA_SASL_USERNAME": "producer", "KAFKA_SASL_PASSWORD": "not-the-password"},
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "refused the login of 'producer'" in wrong.stderr, wrong.stderr
    assert "check the Kafka connection's sasl.username and sasl.password" in wrong.stderr
    anonymous = run("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic, "--count", "1")
    assert anonymous.returncode == 2, anonymous.stderr
    assert time.monotonic() - started < 40


def test_the_producer_may_not_write_the_dead_letter_topic(kafka_broker, topic_factory, login):
    topic = topic_factory("cli-acl", partitions=1)
    dlq = topic_factory("cli-acl-dlq", partitions=1, dead_letters_of=topic)
    refused = run("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", dlq, "--count", "1", login=login)
    assert refused.returncode == 2
    assert f"Kafka user 'producer' may not write to topic '{dlq}'" in refused.stderr, refused.stderr
