"""A KRaft node (combined broker and controller) from the jars `make setup` resolved: the single-node
stack's one, or a member of :class:`devstack.kafka_cluster.KafkaCluster`.

Security is always on: clients log in with SCRAM-SHA-512 as one of :data:`USERS`, and the standard
authorizer gives each only what ``include/kafka/acls.template`` grants.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from string import Template
from typing import Any

from devstack.errors import StackError
from devstack.paths import HOME, KAFKA_LIBS
from devstack.secret_files import generated_passwords, write_private

ACL_TEMPLATE = HOME / "include" / "kafka" / "acls.template"
# The SCRAM users clients log in as. ``ops`` is a super user for people operating the stack (and the tests'
# own checks); no Airflow connection carries it.
USERS = ("admin", "producer", "streaming", "reconciler", "ops")
SUPER_USERS = ("broker", "controller", "ops")
# The principals of the broker's own listeners (PLAIN, static), never given to a client.
_INTERNAL_USERS = ("broker", "controller")
SCRAM_MECHANISM = "SCRAM-SHA-512"
# The pipeline's topics, as the ACL template names them.
PIPELINE_TOPICS = {
    "events": "clickstream-events",
    "dead_letters": "clickstream-events-dlq",
    "smoke": "clickstream-smoke",
}


def performance_options() -> list[str]:
    """The JVM's collector and compiler options: ``KAFKA_JVM_PERFORMANCE_OPTS`` when set, as Kafka's own start
    scripts read it (the tests give their brokers the client compiler and the serial collector), else G1."""
    return shlex.split(os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or "-XX:+UseG1GC")


@dataclass(frozen=True)
class AclRule:
    """One line of the ACL template: ``principal`` may do ``operations`` on a resource."""

    principal: str
    resource: str  # topic or group
    pattern: str  # literal or prefixed
    name: str
    operations: tuple[str, ...]


def acl_rules(**topics: str) -> list[AclRule]:
    """The template's rules for the given topic names (the pipeline's own by default)."""
    text = Template(ACL_TEMPLATE.read_text()).substitute({**PIPELINE_TOPICS, **topics})
    rules = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, resource, pattern, name, operations = line.split()
        rules.append(AclRule(principal, resource, pattern, name, tuple(operations.split(","))))
    return rules


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, as ``kafka-storage random-uuid`` prints.

    Never one starting with "-", which the storage tool would read as an option (Kafka's own ids avoid it too).
    """
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


@dataclass
class KafkaBroker:
    """A KRaft node (combined broker and controller) whose files live in ``workdir``.

    ``port`` is the SASL/SCRAM listener clients use; ``internal_port`` the broker's own (PLAIN, its static
    user only). ``plaintext_port``, when set, adds an unauthenticated listener whose clients are super
    users: only ``bench/`` sets it, to measure what SASL costs beside it.

    Alone it is node 1 and the quorum's only voter. In a cluster, each node gets its ``node_id``, the
    quorum's ``voters``, the cluster's ``cluster_id`` and ``bootstrap`` (every node's client address), and
    one ``passwords_path`` shared by all.
    """

    workdir: Path
    port: int
    controller_port: int
    internal_port: int
    heap: str = "512m"
    jvm_options: tuple[str, ...] = ()
    plaintext_port: int | None = None
    node_id: int = 1
    voters: str | None = None
    cluster_id: str | None = None
    bootstrap: str | None = None
    passwords_path: Path | None = None
    replication_factor: int = 1
    min_insync_replicas: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def passwords_file(self) -> Path:
        return self.passwords_path or self.workdir / "passwords.json"

    @cached_property
    def _passwords(self) -> dict[str, str]:
        return generated_passwords(self.passwords_file, (*_INTERNAL_USERS, *USERS))

    def passwords(self) -> dict[str, str]:
        """Every principal's password: generated on first use and kept in ``passwords.json`` (0600)."""
        return self._passwords

    def client_config(self, user: str = "ops", **extra: Any) -> dict[str, Any]:
        """librdkafka settings that log in as ``user`` on the client listener."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": user,
            "sasl.password": self.passwords()[user],
            **extra,
        }

    def plaintext_config(self, **extra: Any) -> dict[str, Any]:
        if self.plaintext_port is None:
            raise StackError("this broker has no plaintext listener (only bench/ asks for one)")
        return {"bootstrap.servers": f"127.0.0.1:{self.plaintext_port}", **extra}

    def _internal_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": f"127.0.0.1:{self.internal_port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "broker",
            "sasl.password": self.passwords()["broker"],
        }

    def airflow_connections(self, **topics: str) -> dict[str, str]:
        """The Airflow Kafka connections of the pipeline's principals, as environment variables.

        ``kafka_default`` is the producer (the burst operator's default); the topic operator, the streaming
        job and the reconciler name their own.
        """
        import json

        def connection(user: str, **extra: str) -> str:
            return json.dumps({"conn_type": "kafka", "extra": self.client_config(user, **extra)})

        return {
            "AIRFLOW_CONN_KAFKA_DEFAULT": connection("producer"),
            "AIRFLOW_CONN_KAFKA_ADMIN": connection("admin"),
            "AIRFLOW_CONN_KAFKA_STREAMING": connection("streaming", **{"group.id": "clickstream-streaming"}),
            "AIRFLOW_CONN_KAFKA_RECONCILER": connection("reconciler", **{"group.id": "clickstream-reconciler"}),
        }

    def java(self, main_class: str, *args: str) -> list[str]:
        if not KAFKA_LIBS.is_dir():
            raise StackError(f"Kafka jars are missing in {KAFKA_LIBS}: run `make setup` first")
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *performance_options(),
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={HOME / 'include/kafka/log4j2.yaml'}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main_class,
            *args,
        ]

    def render_config(self) -> str:
        passwords = self.passwords()
        super_users = [f"User:{name}" for name in SUPER_USERS]
        extra_listeners = extra_protocols = ""
        if self.plaintext_port is not None:
            extra_listeners, extra_protocols = f",BENCH://127.0.0.1:{self.plaintext_port}", ",BENCH:PLAINTEXT"
            super_users.append("User:ANONYMOUS")
        return Template((HOME / "include/kafka/server.properties").read_text()).substitute(
            node_id=self.node_id,
            voters=self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            replication_factor=self.replication_factor,
            min_insync_replicas=self.min_insync_replicas,
            port=self.port,
            internal_port=self.internal_port,
            controller_port=self.controller_port,
            data_dir=str(self.data_dir),
            broker_password=passwords["broker"],
            controller_password=passwords["controller"],
            super_users=";".join(super_users),
            extra_listeners=extra_listeners,
            extra_protocols=extra_protocols,
        )

    def prepare(self) -> None:
        """Write server.properties (0600: it holds the listeners' passwords) and format the storage once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_private(self.config_file, self.render_config())
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            replace(self, jvm_options=()).java(  # no JMX agent in a one-off tool: it would take the metrics port
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id or kafka_cluster_id(),
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {self.data_dir} failed:\n{result.stderr[-2000:]}")

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.config_file))

    def healthy(self) -> bool:
        """The broker answers metadata requests on its own listener (a listening socket alone is not enough),
        and the metadata it serves lists it as a registered broker."""
        from confluent_kafka.admin import AdminClient

        try:
            # log_level 0: a broker that is still starting is expected here, not worth a log line.
            admin = AdminClient({**self._internal_config(), "socket.timeout.ms": 2000, "log_level": 0})
            metadata = admin.list_topics(timeout=2)
            return self.node_id in metadata.brokers
        except Exception:
            return False

    def ensure_principals(self, timeout_s: float = 60, **topics: str) -> None:
        """Create or update every SCRAM user with its password, and grant the ACLs for ``topics``.

        Idempotent, so it runs on every start; it returns once each user can log in.
        """
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient(self._internal_config())
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upserts = [UserScramCredentialUpsertion(user, info, self.passwords()[user].encode()) for user in USERS]
        for user, future in admin.alter_user_scram_credentials(upserts, request_timeout=timeout_s).items():
            try:
                future.result()
            except Exception as error:
                raise StackError(f"could not create the Kafka SCRAM user {user!r}: {error}") from None
        self.grant(admin, **topics)
        deadline = time.monotonic() + timeout_s
        for user in USERS:
            while not self.can_log_in(user):
                if time.monotonic() > deadline:
                    raise StackError(f"the Kafka user {user!r} could not log in {timeout_s:.0f}s after its creation")
                time.sleep(0.2)

    def grant(self, admin: Any = None, **topics: str) -> None:
        """Grant the template's ACLs for ``topics`` (the pipeline's own by default); existing ones are kept."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            AdminClient,
            ResourcePatternType,
            ResourceType,
        )

        admin = admin or AdminClient(self._internal_config())
        bindings = [
            AclBinding(
                # librdkafka names Kafka's CLUSTER resource (type 4, whose one name is kafka-cluster) BROKER.
                ResourceType.BROKER if rule.resource == "cluster" else ResourceType[rule.resource.upper()],
                rule.name,
                ResourcePatternType[rule.pattern.upper()],
                f"User:{rule.principal}",
                "*",
                AclOperation[operation],
                AclPermissionType.ALLOW,
            )
            for rule in acl_rules(**topics)
            for operation in rule.operations
        ]
        for future in admin.create_acls(bindings, request_timeout=30).values():
            future.result()

    def can_log_in(self, user: str, password: str | None = None) -> bool:
        from confluent_kafka.admin import AdminClient

        config = self.client_config(user, **{"socket.timeout.ms": 2000, "log_level": 0})
        if password is not None:
            config["sasl.password"] = password
        try:
            AdminClient(config).list_topics(timeout=3)
            return True
        except Exception:
            return False
