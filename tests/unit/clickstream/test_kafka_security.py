"""A Kafka connection's login, carried to a Spark job: the JAAS line, the environment, the errors."""

from __future__ import annotations

import json

import pytest

from clickstream.kafka_security import (
    SECURITY_ENV,
    KafkaSecurityError,
    kafka_options,
    login_problem,
    security_env,
    spark_kafka_options,
)

SCRAM = {
    "bootstrap.servers": "broker:9092",
    "group.id": "g",
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "streaming",
    "sasl.password": 'p"w\\d',
}


def test_only_the_login_travels_and_it_becomes_a_quoted_jaas_line():
    env = security_env(SCRAM)
    assert set(json.loads(env[SECURITY_ENV])) == {
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
    }
    options = kafka_options("broker:9092", env)
    assert options == {
        "kafka.bootstrap.servers": "broker:9092",
        "kafka.security.protocol": "SASL_PLAINTEXT",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="streaming" password="p\\"w\\\\d";',
    }


def test_no_login_means_plaintext_and_no_environment():
    assert security_env({"bootstrap.servers": "b:9092"}) == {}
    assert kafka_options("b:9092", {}) == {"kafka.bootstrap.servers": "b:9092", "kafka.security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER"}, "not supported"),
        ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"}, "sasl.password"),
    ],
)
def test_settings_a_job_cannot_log_in_with_say_what_to_set(settings, message):
    with pytest.raises(KafkaSecurityError, match=message):
        spark_kafka_options(settings)


def test_a_malformed_environment_is_a_clear_error():
    with pytest.raises(KafkaSecurityError, match=f"{SECURITY_ENV} is not JSON"):
        kafka_options("b:9092", {SECURITY_ENV: "{"})


class FakeError:  # the two methods of confluent_kafka.KafkaError that login_problem reads
    def __init__(self, name: str, text: str) -> None:
        self._name, self._text = name, text

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text


def test_a_refused_login_names_the_user_and_what_to_check():
    error = FakeError("_AUTHENTICATION", "SASL authentication error: invalid credentials")
    assert "refused the login of 'streaming'" in str(login_problem(SCRAM, error))
    assert "requires a login" in str(login_problem({"bootstrap.servers": "b"}, error))
    assert login_problem(SCRAM, FakeError("_TRANSPORT", "Broker transport failure")) is None
