"""Idempotent topic management: create what is missing, accept what matches, explain what differs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from clickstream.defaults import TOPIC_RETENTION_MS
from clickstream.kafka_security import (
    DENIED_ERRORS,
    KafkaSecurityError,
    LoginRefused,
    LoginWatch,
    login_problem,
    security_env,
    security_settings,
    spark_kafka_options,
)
from clickstream.kafka_topic_state import TopicNotFound, TopicState, read_topic_state


class TopicConfigMismatch(ValueError):
    """An existing topic differs from what was asked; the message lists each difference and its fix."""


class KafkaUnreachable(ConnectionError):
    """The admin client could not reach the brokers in time."""


@dataclass(frozen=True)
class TopicSpec:
    """What a topic must look like. ``configs`` are compared as the broker reports them (strings)."""

    name: str
    partitions: int = 3
    replication_factor: int = 1
    retention_ms: int = TOPIC_RETENTION_MS
    cleanup_policy: str = "delete"
    configs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 249:
            raise ValueError(f"topic name {self.name!r} must be 1 to 249 characters")
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be at least 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ValueError(f"{self.name}: replication_factor must be at least 1, got {self.replication_factor}")
        if self.cleanup_policy not in ("delete", "compact", "compact,delete", "delete,compact"):
            raise ValueError(
                f"{self.name}: cleanup_policy must be delete, compact or both, got {self.cleanup_policy!r}"
            )

    def topic_configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy, **self.configs}


class KafkaTopicsHook(KafkaAdminClientHook):
    """The official admin hook, plus comparing existing topics with a :class:`TopicSpec`, and the cluster's
    address for clients that are not built from the connection (a Spark job's Kafka source)."""

    def __init__(self, kafka_config_id: str = KafkaAdminClientHook.default_conn_name, timeout_s: float = 30) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.timeout_s = timeout_s

    def bootstrap_servers(self) -> str:
        """``bootstrap.servers`` of the connection, or an error that says where to set it."""
        servers = self.get_connection(self.kafka_config_id).extra_dejson.get("bootstrap.servers")
        if not servers:
            raise AirflowFailException(
                f"Kafka connection {self.kafka_config_id!r} has no 'bootstrap.servers' in its extra: "
                'set it, e.g. {"bootstrap.servers": "broker:9092"}'
            )
        return str(servers)

    def spark_job_env(self) -> dict[str, str]:
        """The connection's credentials as a Spark job's environment (never its command line).

        Checked here, so a connection a job could not log in with fails the task with what to set.
        """
        extra = self.get_connection(self.kafka_config_id).extra_dejson
        try:
            spark_kafka_options(security_settings(extra))
        except KafkaSecurityError as error:
            raise AirflowFailException(f"Kafka connection {self.kafka_config_id!r}: {error}") from None
        env = security_env(extra)
        for value in (extra.get("sasl.password"), *env.values()):
            if value:
                mask_secret(value)  # in the task's log and the supervisor's, whatever prints it
        return env

    def _get_client(self, config: dict[str, Any]) -> AdminClient:
        self._login = LoginWatch()
        # librdkafka's own log lines go to the task log instead of raw stderr.
        return AdminClient({"logger": logging.getLogger("clickstream.kafka"), "error_cb": self._login, **config})

    def _existing(self, names: list[str]) -> dict[str, Any]:
        admin = self.get_conn
        extra = self.get_connection(self.kafka_config_id).extra_dejson
        try:
            metadata = self._login.list_topics(admin, self.timeout_s)
        except LoginRefused as refused:
            problem = login_problem(extra, refused.args[0])
            raise AirflowFailException(f"{problem} (connection {self.kafka_config_id!r})") from None
        except KafkaException as exc:
            raise KafkaUnreachable(
                f"cannot reach Kafka at {extra.get('bootstrap.servers')} (connection {self.kafka_config_id!r}) "
                f"within {self.timeout_s:.0f}s: {exc.args[0]}. Check that the broker runs and the connection's "
                "bootstrap.servers (and its login, if the broker requires one)"
            ) from None
        return {name: metadata.topics[name] for name in names if name in metadata.topics}

    def _configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
        if not resources:
            return {}
        futures = self.get_conn.describe_configs(resources, request_timeout=self.timeout_s)
        try:
            return {
                res.name: {k: v.value for k, v in fut.result(self.timeout_s).items()} for res, fut in futures.items()
            }
        except KafkaException as exc:
            if exc.args[0].name() in DENIED_ERRORS:
                denied = f"describe the configs of {', '.join(map(repr, names))} ({exc.args[0].str()})"
                raise AirflowFailException(self.refusal(denied, "DESCRIBE_CONFIGS on them")) from None
            raise

    def replication_defaults(self) -> tuple[int, int]:
        """The brokers' ``default.replication.factor`` and ``min.insync.replicas``: what the cluster is built for
        (1 and 1 on one node, 3 and 2 on three), so topics need no numbers of their own."""
        self._existing([])  # reach the brokers first, with the login checks and their messages
        admin = self.get_conn
        broker_ids = sorted(admin.list_topics(timeout=self.timeout_s).brokers)
        resource = ConfigResource(ConfigResource.Type.BROKER, str(broker_ids[0]))
        try:
            configs = admin.describe_configs([resource], request_timeout=self.timeout_s)[resource].result(
                self.timeout_s
            )
        except KafkaException as exc:
            if exc.args[0].name() in DENIED_ERRORS:
                denied = f"read the brokers' configs ({exc.args[0].str()}) for their replication defaults"
                raise AirflowFailException(
                    self.refusal(denied, "DESCRIBE_CONFIGS on the cluster")
                    + ", or pass replication_factor and min_insync_replicas"
                ) from None
            raise
        return int(configs["default.replication.factor"].value), int(configs["min.insync.replicas"].value)

    def topic_state(self, topic: str) -> TopicState:
        """The topic's cluster id, topic id and each partition's earliest and latest offsets: which Kafka and which
        incarnation of the topic a checkpoint or Redis's counted offsets belong to."""
        self._existing([])  # reach the brokers first, with the login checks and their messages
        try:
            return read_topic_state(self.get_conn, topic, self.timeout_s)
        except TopicNotFound as missing:
            raise AirflowFailException(
                f"{missing} (connection {self.kafka_config_id!r}): create it first (the DAGs' create_kafka_topic task)"
            ) from None
        except KafkaException as exc:
            if exc.args[0].name() in DENIED_ERRORS:
                denied = f"describe topic {topic!r} or list its offsets ({exc.args[0].str()})"
                raise AirflowFailException(self.refusal(denied, f"DESCRIBE on {topic!r}")) from None
            raise

    def refusal(self, denied: str, operations: str) -> str:
        """Why this connection's principal was refused (``denied``: what it may not do), and the two ways out."""
        user = self.get_connection(self.kafka_config_id).extra_dejson.get("sasl.username", "ANONYMOUS")
        return (
            f"Kafka user {user!r} (connection {self.kafka_config_id!r}) may not {denied}: use a connection whose "
            "principal may (on the local stack: kafka_admin manages topics named clickstream-*, kafka_streaming "
            f"and kafka_reconciler read them), or grant the user {operations} (on the local stack: "
            "python -m devstack grant --topic <events topic> --dead-letter-topic <dead-letter topic>)"
        )

    def require_access(self, needs: dict[str, tuple[str, ...]]) -> None:
        """Fail now, saying who may not do what, unless the principal may do ``needs`` ({topic: operations}).

        A Spark job refused by the broker fails deep inside Spark, after its restarts; this asks first.
        Topics that do not exist yet are left to the job, which reports them.
        """
        from confluent_kafka import TopicCollection

        names = list(needs)
        futures = self.get_conn.describe_topics(
            TopicCollection(names), request_timeout=self.timeout_s, include_authorized_operations=True
        )
        missing: list[str] = []
        for name, future in futures.items():
            try:
                description = future.result(self.timeout_s)
            except KafkaException as exc:
                if exc.args[0].name() in DENIED_ERRORS:
                    denied = f"describe topic {name!r} ({exc.args[0].str()})"
                    raise AirflowFailException(self.refusal(denied, f"DESCRIBE on {name!r}")) from None
                if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
                    continue
                raise
            allowed = {operation.name for operation in description.authorized_operations or []}
            missing += [f"{operation} {name}" for operation in needs[name] if not {operation, "ALL"} & allowed]
        if missing:
            raise AirflowFailException(self.refusal("; ".join(missing), ", ".join(missing)))

    def differences(self, spec: TopicSpec, metadata: Any, configs: dict[str, str]) -> list[str]:
        """Human-readable differences between an existing topic and ``spec``, each with what to do."""
        diffs = []
        partitions = len(metadata.partitions)
        if partitions != spec.partitions:
            if partitions < spec.partitions:
                fix = "pass allow_partition_increase=True to add partitions (keys will map to new partitions)"
            else:
                fix = f"Kafka cannot remove partitions: ask for partitions={partitions} or recreate the topic"
            diffs.append(f"partitions: topic has {partitions}, asked for {spec.partitions} ({fix})")
        replicas = {len(p.replicas) for p in metadata.partitions.values()}
        if replicas != {spec.replication_factor}:
            diffs.append(
                f"replication factor: topic has {sorted(replicas)}, asked for {spec.replication_factor} "
                "(change it with a partition reassignment, or ask for what the topic has)"
            )
        for key, wanted in spec.topic_configs().items():
            actual = configs.get(key)
            if actual != wanted:
                diffs.append(
                    f"{key}: topic has {actual}, asked for {wanted} (alter it with kafka-configs.sh --alter "
                    f"--entity-type topics --entity-name {spec.name} --add-config {key}={wanted}, or ask for {actual})"
                )
        return diffs

    def ensure_topics(self, specs: list[TopicSpec], allow_partition_increase: bool = False) -> dict[str, str]:
        """Make each topic match its spec. Returns what happened per topic: created, unchanged or partitions_increased.

        Nothing is changed unless every existing topic either matches or differs only in partitions that may
        be increased, so a failed call leaves the cluster as it found it.
        """
        names = [s.name for s in specs]
        existing = self._existing(names)
        configs = self._configs([n for n in names if n in existing])
        outcome: dict[str, str] = {}
        problems: list[str] = []
        to_grow: list[NewPartitions] = []
        for spec in specs:
            if spec.name not in existing:
                continue
            diffs = self.differences(spec, existing[spec.name], configs[spec.name])
            only_growth = (
                allow_partition_increase
                and len(diffs) == 1
                and diffs[0].startswith("partitions:")
                and len(existing[spec.name].partitions) < spec.partitions
            )
            if only_growth:
                to_grow.append(NewPartitions(spec.name, spec.partitions))
                outcome[spec.name] = "partitions_increased"
            elif diffs:
                problems.append(f"topic {spec.name!r} exists with other settings:\n  - " + "\n  - ".join(diffs))
            else:
                outcome[spec.name] = "unchanged"
        if problems:
            raise TopicConfigMismatch("\n".join(problems))

        admin = self.get_conn
        by_name = {spec.name: spec for spec in specs}
        if to_grow:
            for name, fut in admin.create_partitions(to_grow, request_timeout=self.timeout_s).items():
                fut.result(self.timeout_s)
                self._wait_served(name, by_name[name].partitions)
                self.log.info("Increased the partitions of %s", name)
        new = [
            NewTopic(
                s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=s.topic_configs()
            )
            for s in specs
            if s.name not in existing
        ]
        if new:
            for name, fut in admin.create_topics(new, request_timeout=self.timeout_s).items():
                try:
                    fut.result(self.timeout_s)
                    # Returned only once served: a caller (or this hook's next call) must find what it created.
                    self._wait_served(name, by_name[name].partitions)
                    outcome[name] = "created"
                    self.log.info("Created topic %s", name)
                except KafkaException as exc:
                    if exc.args[0].name() in DENIED_ERRORS:
                        denied = f"create topic {name!r} ({exc.args[0].str()})"
                        raise AirflowFailException(self.refusal(denied, f"CREATE on {name!r}")) from None
                    if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                        raise
                    # Created meanwhile, or not yet in the metadata read above: compare it now.
                    metadata = self._wait_served(name)
                    if diffs := self.differences(by_name[name], metadata, self._configs([name])[name]):
                        raise TopicConfigMismatch(
                            f"topic {name!r} exists with other settings:\n  - " + "\n  - ".join(diffs)
                        ) from None
                    outcome[name] = "unchanged"
        return {name: outcome[name] for name in names}

    def _wait_served(self, name: str, partitions: int | None = None) -> Any:
        """The topic's metadata once the broker serves it (every partition has a leader, and ``partitions``
        of them when given); a topic just created or grown is not served at once."""
        admin = self.get_conn
        deadline = time.monotonic() + self.timeout_s
        while True:
            topic = admin.list_topics(name, timeout=max(0.1, deadline - time.monotonic())).topics.get(name)
            served = topic is not None and topic.error is None and bool(topic.partitions)
            if (
                served
                and all(p.leader >= 0 for p in topic.partitions.values())
                and (partitions is None or len(topic.partitions) == partitions)
            ):
                return topic
            if time.monotonic() > deadline:
                raise KafkaUnreachable(f"topic {name!r} was not served by the broker within {self.timeout_s:.0f}s")
            time.sleep(0.1)
