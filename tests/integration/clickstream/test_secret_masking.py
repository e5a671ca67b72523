"""Airflow's secret masker knows every credential a task hands to a Spark job, whatever form it takes there."""

from __future__ import annotations

import json

import pytest
from airflow.sdk._shared.secrets_masker.secrets_masker import redact

from clickstream.hooks.kafka_topics import KafkaTopicsHook
from clickstream.hooks.redis import ClickstreamRedisHook
from clickstream.kafka_security import SECURITY_ENV

pytestmark = pytest.mark.integration


def test_the_spark_jobs_credentials_are_masked_in_any_log_line(airflow_env, kafka_broker, redis_server):
    kafka_env = KafkaTopicsHook("kafka_streaming").spark_job_env()
    redis_url = ClickstreamRedisHook(redis_conn_id="redis_default").url()
    secrets = [
        kafka_broker.passwords()["streaming"],
        kafka_env[SECURITY_ENV],
        redis_url,
        redis_server.passwords()["writer"],
    ]
    assert json.loads(kafka_env[SECURITY_ENV])["sasl.password"] == secrets[0]
    for secret in secrets:
        assert redact(f"it is {secret} here") == "it is *** here", secret
