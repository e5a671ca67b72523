"""How a Kafka client proves who it is, carried from an Airflow connection to a Spark job.

An Airflow Kafka connection's extra is librdkafka configuration (``security.protocol``, ``sasl.mechanism``,
``sasl.username``, ``sasl.password``). A Spark job speaks Java Kafka instead, where the same credentials are
a JAAS line. The operators hand the job the librdkafka subset in one environment variable (never its
command line); the job turns it into Spark's ``kafka.*`` options. Plain Python, so a Spark driver imports it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

# The environment variable that carries a Spark job's Kafka credentials, as JSON.
SECURITY_ENV = "CLICKSTREAM_KAFKA_SECURITY"

# The librdkafka settings that say how to authenticate; everything else in a connection stays with it.
SECURITY_KEYS = ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password")

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


class KafkaSecurityError(ValueError):
    """Settings a Spark job cannot turn into a Kafka login; the message says what to set."""


def security_settings(config: Mapping[str, object]) -> dict[str, str]:
    """The authentication part of a librdkafka configuration (a Kafka connection's extra)."""
    return {key: str(config[key]) for key in SECURITY_KEYS if config.get(key) not in (None, "")}


def security_env(config: Mapping[str, object]) -> dict[str, str]:
    """Environment for a Spark job that must log in as the connection ``config`` describes (empty: no login)."""
    settings = security_settings(config)
    return {SECURITY_ENV: json.dumps(settings)} if settings else {}


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def spark_kafka_options(settings: Mapping[str, str]) -> dict[str, str]:
    """Spark's ``kafka.*`` options for librdkafka-style ``settings``: the protocol, the mechanism and a JAAS line."""
    options: dict[str, str] = {}
    protocol = settings.get("security.protocol", "PLAINTEXT").upper()
    options["kafka.security.protocol"] = protocol
    if not protocol.startswith("SASL"):
        return options
    mechanism = settings.get("sasl.mechanism", "GSSAPI").upper()
    module = _LOGIN_MODULES.get(mechanism)
    if module is None:
        raise KafkaSecurityError(
            f"sasl.mechanism {mechanism!r} is not supported for the Spark jobs: use one of {sorted(_LOGIN_MODULES)}"
        )
    username, password = settings.get("sasl.username"), settings.get("sasl.password")
    if not username or not password:
        raise KafkaSecurityError(
            f"security.protocol {protocol} with {mechanism} needs sasl.username and sasl.password in the Kafka "
            "connection's extra"
        )
    options["kafka.sasl.mechanism"] = mechanism
    options["kafka.sasl.jaas.config"] = f"{module} required username={_quoted(username)} password={_quoted(password)};"
    return options


def job_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The librdkafka login a Spark job was handed in :data:`SECURITY_ENV` (``environ``, the process
    environment by default); empty without one."""
    environ = os.environ if environ is None else environ
    raw = environ.get(SECURITY_ENV, "")
    try:
        settings = json.loads(raw) if raw else {}
    except json.JSONDecodeError as error:
        raise KafkaSecurityError(f"{SECURITY_ENV} is not JSON ({error.msg}); the operators set it") from None
    if not isinstance(settings, dict):
        raise KafkaSecurityError(f"{SECURITY_ENV} must be a JSON object of librdkafka settings")
    return settings


def kafka_options(bootstrap_servers: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``kafka.*`` option a Spark Kafka source or sink of this project needs: where, and as whom.

    The credentials come from :data:`SECURITY_ENV` in ``environ`` (the process environment by default).
    """
    return {"kafka.bootstrap.servers": bootstrap_servers, **spark_kafka_options(job_settings(environ))}


# Broker answers that mean "you may not", as librdkafka names them.
DENIED_ERRORS = frozenset({"TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"})


def login_problem(config: Mapping[str, object], error: object) -> str | None:
    """What to fix when a Kafka client's ``error`` (a ``KafkaError``) is a refused login; None otherwise."""
    name = getattr(error, "name", lambda: "")()
    text = getattr(error, "str", lambda: str(error))()
    if name != "_AUTHENTICATION" and "authentication" not in text.lower():
        return None
    user = config.get("sasl.username")
    if not user:
        return (
            f"Kafka at {config.get('bootstrap.servers')} requires a login ({text}): set security.protocol, "
            "sasl.mechanism, sasl.username and sasl.password in the Kafka connection's extra"
        )
    return (
        f"Kafka at {config.get('bootstrap.servers')} refused the login of {user!r} ({text}): check the Kafka "
        "connection's sasl.username and sasl.password (and sasl.mechanism, SCRAM-SHA-512 for the local stack)"
    )


class LoginRefused(Exception):
    """The broker refused the client's login; ``args[0]`` is librdkafka's error."""


class LoginWatch:
    """An ``error_cb`` that keeps refused logins: librdkafka reports them there only (the request that needed
    the login just times out). Calls ``chained`` with every error too."""

    def __init__(self, chained: Callable[[Any], None] | None = None) -> None:
        self.refusals: list[Any] = []
        self.chained = chained

    def __call__(self, error: Any) -> None:
        if error.name() == "_AUTHENTICATION":
            self.refusals.append(error)
        if self.chained is not None:
            self.chained(error)

    def list_topics(self, client: Any, timeout_s: float, topic: str | None = None) -> Any:
        """``client.list_topics`` within ``timeout_s``, in short steps: raises :class:`LoginRefused` as soon as
        a refused login is reported, and the last ``KafkaException`` when time runs out."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return client.list_topics(topic, timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            except KafkaException:
                client.poll(0)  # serves the error callback
                if self.refusals:
                    raise LoginRefused(self.refusals[-1]) from None
                if time.monotonic() >= deadline:
                    raise
