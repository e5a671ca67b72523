"""Three KRaft nodes on loopback, each both broker and controller, as one cluster.

Combined nodes, not separate controllers: on a 2-core machine three JVMs instead of six, and a quorum of
three voters still survives one node's loss. Kafka's docs keep combined mode out of critical production
(a broker's load can starve its controller); a team's own cluster runs dedicated controllers, and
nothing here depends on which.

Each node is formatted once with the cluster's id and the static voter set (``controller.quorum.voters``),
as Kafka 4's operations docs describe for a static quorum; the id is kept in ``cluster-id`` beside the nodes
so a restart formats nothing.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker, kafka_cluster_id
from devstack.secret_files import write_private

REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


@dataclass(frozen=True)
class NodePorts:
    port: int  # CLIENT (SCRAM)
    controller: int
    internal: int


@dataclass
class QuorumStatus:
    leader_id: int
    voters: list[int]


@dataclass
class KafkaCluster:
    nodes: list[KafkaBroker]
    workdir: Path

    @classmethod
    def build(
        cls, workdir: Path, ports: list[NodePorts], jvm_options: list[tuple[str, ...]] | None = None, heap: str = "512m"
    ) -> KafkaCluster:
        """Nodes 1..n in ``workdir/node-<id>``, sharing one passwords file and one cluster id."""
        voters = ",".join(f"{i}@127.0.0.1:{p.controller}" for i, p in enumerate(ports, start=1))
        bootstrap = ",".join(f"127.0.0.1:{p.port}" for p in ports)
        options = jvm_options or [() for _ in ports]
        nodes = [
            KafkaBroker(
                workdir / f"node-{i}",
                p.port,
                p.controller,
                p.internal,
                heap=heap,
                jvm_options=options[i - 1],
                node_id=i,
                voters=voters,
                bootstrap=bootstrap,
                passwords_path=workdir / "passwords.json",
                replication_factor=min(REPLICATION_FACTOR, len(ports)),
                min_insync_replicas=min(MIN_INSYNC_REPLICAS, len(ports)),
            )
            for i, p in enumerate(ports, start=1)
        ]
        return cls(nodes, workdir)

    @property
    def bootstrap_servers(self) -> str:
        return self.nodes[0].bootstrap_servers

    def cluster_id(self) -> str:
        path = self.workdir / "cluster-id"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            path.write_text(kafka_cluster_id() + "\n")
        return path.read_text().strip()

    def prepare(self) -> None:
        cluster_id = self.cluster_id()
        for node in self.nodes:
            node.cluster_id = cluster_id
            node.prepare()

    def client_config(self, user: str = "ops", **extra: Any) -> dict[str, Any]:
        return self.nodes[0].client_config(user, **extra)

    def passwords(self) -> dict[str, str]:
        return self.nodes[0].passwords()

    def airflow_connections(self, **topics: str) -> dict[str, str]:
        return self.nodes[0].airflow_connections(**topics)

    def answering_node(self, to: str) -> KafkaBroker:
        """The first node that answers, to ``to`` (said when none does)."""
        node = next((n for n in self.nodes if n.healthy()), None)
        if node is None:
            raise StackError(f"no Kafka node answers: cannot {to}")
        return node

    def ensure_principals(self, timeout_s: float = 60, **topics: str) -> None:
        """SCRAM users and ACLs are cluster metadata: made through one node, they reach all."""
        self.answering_node("create the SCRAM users").ensure_principals(timeout_s, **topics)

    def grant(self, **topics: str) -> None:
        """The ACL template's grants for ``topics``, through one node (as :meth:`KafkaBroker.grant`)."""
        self.answering_node("grant the ACLs").grant(**topics)

    def quorum(self) -> QuorumStatus:
        """The controller quorum's leader and voters, as Kafka's own ``kafka-metadata-quorum`` tool reports."""
        node = self.answering_node("describe the controller quorum")
        config = self.workdir / "internal-client.properties"
        password = node.passwords()["broker"]
        write_private(
            config,
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="broker" password="{password}";\n',
        )
        command = [
            *node.java("org.apache.kafka.tools.MetadataQuorumCommand"),
            "--bootstrap-server",
            f"127.0.0.1:{node.internal_port}",
            "--command-config",
            str(config),
            "describe",
            "--status",
        ]
        command = [arg for arg in command if not arg.startswith("-javaagent")]  # not the node's metrics agent
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        leader = re.search(r"^LeaderId:\s+(-?\d+)", result.stdout, re.M)
        voters = re.search(r"^CurrentVoters:\s+(.*)$", result.stdout, re.M)
        if result.returncode != 0 or leader is None or voters is None:
            raise StackError(f"kafka-metadata-quorum failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
        return QuorumStatus(int(leader.group(1)), sorted(int(v) for v in re.findall(r'"id":\s*(\d+)', voters.group(1))))

    def partitions(self, topic: str) -> dict[int, dict[str, Any]]:
        """Each partition's leader, replicas and in-sync replicas, as the cluster's metadata reports them."""
        from confluent_kafka.admin import AdminClient

        # log_level 0: a node that is down (as in the failure tests) is expected, not worth a line per call.
        metadata = AdminClient(self.client_config("ops", log_level=0)).list_topics(topic, timeout=10)
        return {
            p.id: {"leader": p.leader, "replicas": sorted(p.replicas), "isr": sorted(p.isrs)}
            for p in metadata.topics[topic].partitions.values()
        }
