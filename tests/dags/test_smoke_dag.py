"""Airflow is real: it loads the plugin and runs a DAG that touches Kafka and Redis through connections."""

from __future__ import annotations

import json

import pytest
from airflow_cli import airflow

pytestmark = pytest.mark.dags


def test_airflow_plugins_lists_the_clickstream_plugin(airflow_env):
    result = airflow(airflow_env, "plugins", "--output", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    (clickstream,) = [p for p in plugins if p["name"] == "clickstream"]
    # The api-server mounts the feature-serving API and the UI's bundle from it; the UI shows its two views.
    assert [(app["name"], app["url_prefix"]) for app in clickstream["fastapi_apps"]] == [
        ("Clickstream feature serving", "/clickstream"),
        ("Clickstream UI", "/clickstream-ui"),
    ]
    assert [(app["name"], app["destination"], app["url_route"]) for app in clickstream["react_apps"]] == [
        ("Clickstream", "nav", "clickstream"),
        ("Clickstream report", "dag_run", "clickstream_report"),
    ]


def test_airflow_providers_lists_the_clickstream_provider(airflow_env):
    result = airflow(airflow_env, "providers", "get", "clickstream-airflow", "--output", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    from clickstream import __version__

    assert __version__ in result.stdout


def test_smoke_dag_passes_against_real_kafka_and_redis(airflow_env, redis_client, kafka_broker):
    result = airflow(airflow_env, "dags", "test", "clickstream_smoke", timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # The token that went through Kafka is the one now in Redis.
    token = redis_client.get("clickstream:smoke:last_token")
    assert token is not None and len(token) == 32
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka_broker.client_config("ops", **{"group.id": "check"}))
    _low, high = consumer.get_watermark_offsets(TopicPartition("clickstream-smoke", 0), timeout=10)
    consumer.assign([TopicPartition("clickstream-smoke", 0, high - 1)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and message.value() == token
