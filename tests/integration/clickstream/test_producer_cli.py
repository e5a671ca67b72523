"""`clickstream-produce` as users run it, against a real broker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from devstack.processes import wait_until

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "clickstream.producer_cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_full_speed_count_prints_a_json_summary(kafka_broker, topic_factory, read_topic):
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
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["delivery"]["sent"] == summary["delivery"]["delivered"] == 5000
    assert summary["delivery"]["latency_p50_ms"] is not None
    assert summary["ground_truth"]["valid"] + sum(summary["ground_truth"]["malformed"].values()) == 5000
    assert len(read_topic(topic)) == 5000


def test_duration_at_a_rate_is_paced_and_summarised(kafka_broker, topic_factory):
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
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert lines["sent"].strip() == "500" and lines["delivered"].strip() == "500"
    assert lines["failed"].strip() == "0"
    elapsed = float(lines["rate"].split("over")[1].split()[0])
    assert 1.8 <= elapsed <= 6, "500 events at 250/s take about two seconds"
    assert lines["latency"].startswith("p50")


def topic_size(bootstrap_servers: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "size"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def test_ctrl_c_flushes_and_loses_nothing(kafka_broker, topic_factory, read_topic):
    topic = topic_factory("cli-interrupt", partitions=3)
    proc = subprocess.Popen(
        [*CLI, "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", topic, "--rps", "2000", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupted mid-stream: once more than 1,000 events are in Kafka, with more on their way.
    assert wait_until(lambda: topic_size(kafka_broker.bootstrap_servers, topic) > 1000, 60), proc.poll()
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
    missing = run("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", "absent", "--count", "1")
    assert missing.returncode == 2 and "topic 'absent' is not available" in missing.stderr
    bad = run("--duration", "5", "--rps", "0")
    assert bad.returncode == 2 and "--duration needs a positive --rps" in bad.stderr
