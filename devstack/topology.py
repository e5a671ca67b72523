"""Which parts make the local stack: the services each topology runs, their ports and supervised programs.

``single`` is one KRaft node with Spark ``local[*]`` inside each job; ``cluster`` is three KRaft nodes and a
Spark standalone master with its workers. Both add Redis, the monitoring parts and Airflow's components.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from devstack import airflow_parts, monitoring
from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker
from devstack.kafka_cluster import KafkaCluster, NodePorts
from devstack.paths import DEPS, KAFKA_LIBS, SPARK_CONF, STATE, VENV_BIN
from devstack.ports import port_from_env
from devstack.postgres_server import PostgresServer
from devstack.redis_server import RedisServer
from devstack.spark_cluster import SparkAuth, SparkMaster, SparkWorker
from devstack.supervisor import Part


def kafka_node_ports(i: int) -> NodePorts:
    """Cluster node ``i``'s ports: CLICKSTREAM_KAFKA_NODE<i>_*, by default the single node's plus 100 per node."""
    step = 100 * (i - 1)
    return NodePorts(
        port_from_env(f"CLICKSTREAM_KAFKA_NODE{i}_PORT", port_from_env("CLICKSTREAM_KAFKA_PORT", 9092) + step),
        port_from_env(
            f"CLICKSTREAM_KAFKA_NODE{i}_CONTROLLER_PORT",
            port_from_env("CLICKSTREAM_KAFKA_CONTROLLER_PORT", 9097) + step,
        ),
        port_from_env(
            f"CLICKSTREAM_KAFKA_NODE{i}_INTERNAL_PORT", port_from_env("CLICKSTREAM_KAFKA_INTERNAL_PORT", 9094) + step
        ),
    )


def kafka_metrics_port(i: int, ports: monitoring.MonitoringPorts) -> int:
    return port_from_env(f"CLICKSTREAM_KAFKA_NODE{i}_METRICS_PORT", ports.kafka_metrics + i - 1)


TOPOLOGIES = ("single", "cluster")
CLUSTER_NODES = 3
SPARK_WORKERS = 2


@dataclass
class Topology:
    """The stack's services as configured by the environment (``scripts/env.sh``), each built once.

    ``CLICKSTREAM_TOPOLOGY=single`` (the default): one KRaft node, Spark ``local[*]`` inside each job.
    ``cluster``: three KRaft nodes (:mod:`devstack.kafka_cluster`) and a Spark standalone master with two
    one-core workers (:mod:`devstack.spark_cluster`). Both have one Redis and the same monitoring.
    """

    brokers: list[KafkaBroker]
    redis: RedisServer
    postgres: PostgresServer | None
    ports: monitoring.MonitoringPorts
    monitoring: dict[str, Any] = field(default_factory=dict)
    kafka_cluster: KafkaCluster | None = None
    spark_master: SparkMaster | None = None
    spark_workers: list[SparkWorker] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "cluster" if self.kafka_cluster is not None else "single"

    @property
    def kafka(self) -> KafkaBroker | KafkaCluster:
        """What clients and principals are managed through: the one broker, or the whole cluster."""
        return self.kafka_cluster or self.brokers[0]

    @classmethod
    def from_env(cls) -> Topology:
        name = os.environ.get("CLICKSTREAM_TOPOLOGY", "single") or "single"
        if name not in TOPOLOGIES:
            raise StackError(f"CLICKSTREAM_TOPOLOGY must be one of {', '.join(TOPOLOGIES)}, not {name!r}")
        ports = monitoring.MonitoringPorts.from_env()
        kafka_cluster = None
        if name == "cluster":
            kafka_cluster = KafkaCluster.build(
                STATE / "kafka-cluster",
                [kafka_node_ports(i) for i in range(1, CLUSTER_NODES + 1)],
                [
                    (monitoring.kafka_jmx_agent(KAFKA_LIBS, kafka_metrics_port(i, ports)),)
                    for i in range(1, CLUSTER_NODES + 1)
                ],
            )
            brokers = kafka_cluster.nodes
        else:
            agent = monitoring.kafka_jmx_agent(KAFKA_LIBS, ports.kafka_metrics)  # the broker's metrics for Prometheus
            brokers = [
                KafkaBroker(
                    STATE / "kafka",
                    port_from_env("CLICKSTREAM_KAFKA_PORT", 9092),
                    port_from_env("CLICKSTREAM_KAFKA_CONTROLLER_PORT", 9097),
                    port_from_env("CLICKSTREAM_KAFKA_INTERNAL_PORT", 9094),
                    jvm_options=(agent,),
                )
            ]
        redis_server = RedisServer(STATE / "redis", port_from_env("CLICKSTREAM_REDIS_PORT", 6379))
        choice = os.environ.get("CLICKSTREAM_AIRFLOW_DB", "sqlite")
        if choice not in ("sqlite", "postgres"):
            raise StackError(f"CLICKSTREAM_AIRFLOW_DB must be sqlite or postgres, not {choice!r}")
        postgres = (
            PostgresServer(STATE / "postgres", port_from_env("CLICKSTREAM_POSTGRES_PORT", 5432))
            if choice == "postgres"
            else None
        )
        parts = {
            "statsd-exporter": monitoring.StatsdExporter(ports, DEPS),
            "redis-exporter": monitoring.RedisExporter(ports, redis_server),
            "prometheus": monitoring.Prometheus(
                STATE / "prometheus",
                ports,
                scrape_interval=os.environ.get("CLICKSTREAM_SCRAPE_INTERVAL") or None,
                rule_for=os.environ.get("CLICKSTREAM_ALERT_FOR") or None,
                kafka_metrics_ports=(
                    [kafka_metrics_port(i, ports) for i in range(1, CLUSTER_NODES + 1)] if kafka_cluster else None
                ),
            ),
            "alertmanager": monitoring.Alertmanager(STATE / "alertmanager", ports),
            "mail": monitoring.MailSink(STATE / "mail", ports, str(VENV_BIN / "python")),
        }
        master, workers = None, []
        if name == "cluster":
            master = SparkMaster(
                STATE / "spark-master",
                port_from_env("CLICKSTREAM_SPARK_MASTER_PORT", 7077),
                port_from_env("CLICKSTREAM_SPARK_MASTER_UI_PORT", 8081),
                SparkAuth(SPARK_CONF),
            )
            workers = [
                SparkWorker(
                    STATE / f"spark-worker-{i}",
                    port_from_env(f"CLICKSTREAM_SPARK_WORKER{i}_PORT", 7077 + i),
                    port_from_env(f"CLICKSTREAM_SPARK_WORKER{i}_UI_PORT", 8081 + i),
                    master,
                    cores=1,
                    memory=os.environ.get("CLICKSTREAM_SPARK_WORKER_MEMORY", "2g"),
                )
                for i in range(1, SPARK_WORKERS + 1)
            ]
        return cls(brokers, redis_server, postgres, ports, parts, kafka_cluster, master, workers)

    def taken_ports(self) -> dict[str, tuple[int, str]]:
        """Each TCP port the stack listens on, with the variable that moves it."""
        ports: dict[str, tuple[int, str]] = {}
        if self.kafka_cluster is not None:
            for broker in self.brokers:
                i = broker.node_id
                ports[f"kafka-{i}"] = (broker.port, f"CLICKSTREAM_KAFKA_NODE{i}_PORT")
                ports[f"kafka-{i} controller"] = (broker.controller_port, f"CLICKSTREAM_KAFKA_NODE{i}_CONTROLLER_PORT")
                ports[f"kafka-{i} internal"] = (broker.internal_port, f"CLICKSTREAM_KAFKA_NODE{i}_INTERNAL_PORT")
                metrics = kafka_metrics_port(i, self.ports)
                ports[f"kafka-{i} metrics"] = (metrics, f"CLICKSTREAM_KAFKA_NODE{i}_METRICS_PORT")
        else:
            broker = self.brokers[0]
            ports["kafka"] = (broker.port, "CLICKSTREAM_KAFKA_PORT")
            ports["kafka controller"] = (broker.controller_port, "CLICKSTREAM_KAFKA_CONTROLLER_PORT")
            ports["kafka internal"] = (broker.internal_port, "CLICKSTREAM_KAFKA_INTERNAL_PORT")
        if self.spark_master is not None:
            ports["spark master"] = (self.spark_master.port, "CLICKSTREAM_SPARK_MASTER_PORT")
            ports["spark master UI"] = (self.spark_master.ui_port, "CLICKSTREAM_SPARK_MASTER_UI_PORT")
            for i, worker in enumerate(self.spark_workers, start=1):
                ports[f"spark worker {i}"] = (worker.port, f"CLICKSTREAM_SPARK_WORKER{i}_PORT")
                ports[f"spark worker {i} UI"] = (worker.ui_port, f"CLICKSTREAM_SPARK_WORKER{i}_UI_PORT")
        ports["redis"] = (self.redis.port, "CLICKSTREAM_REDIS_PORT")
        ports["airflow api-server"] = (airflow_parts.api_port(), "CLICKSTREAM_AIRFLOW_PORT")
        if self.postgres is not None:
            ports["postgres"] = (self.postgres.port, "CLICKSTREAM_POSTGRES_PORT")
        ports.update(self.ports.env_vars())
        if self.kafka_cluster is not None:
            del ports["kafka metrics"]  # each node has its own, above
        return ports

    def prepare(self) -> None:
        """Each service's files: idempotent, and safe to run again after an interrupted run."""
        if self.kafka_cluster is not None:
            self.kafka_cluster.prepare()
        else:
            self.brokers[0].prepare()
        if self.spark_master is not None:
            self.spark_master.auth.prepare()
        for spark_part in (self.spark_master, *self.spark_workers):
            if spark_part is not None:
                spark_part.prepare()
        self.redis.prepare()
        for part in self.monitoring.values():
            if hasattr(part, "prepare"):
                part.prepare()
        if self.postgres is not None:
            self.postgres.prepare()

    def service_parts(self) -> list[Part]:
        parts = [
            Part("kafka" if self.kafka_cluster is None else f"kafka-{b.node_id}", b.command(), b.port, b.healthy)
            for b in self.brokers
        ]
        if self.spark_master is not None:
            # Spark's daemons need little heap of their own; the executors get the workers' memory.
            daemon = {"SPARK_DAEMON_MEMORY": "512m", "SPARK_LOCAL_IP": "127.0.0.1"}
            master = self.spark_master
            parts.append(Part("spark-master", master.command(), master.port, master.healthy, environment=daemon))
            parts += [
                Part(f"spark-worker-{i}", w.command(), w.port, w.healthy, environment=daemon)
                for i, w in enumerate(self.spark_workers, start=1)
            ]
        parts.append(Part("redis", self.redis.command(), self.redis.port, self.redis.healthy))
        parts += [Part(name, part.command(), None, part.healthy) for name, part in self.monitoring.items()]
        if self.postgres is not None:
            pg = self.postgres
            parts.append(Part("postgres", pg.command(), pg.port, pg.healthy, user=pg.run_as))
        return parts

    def check_quorum(self, timeout_s: float = 60) -> None:
        """A cluster's controller quorum has a leader and every node as a voter (printed for `make up`)."""
        if self.kafka_cluster is None:
            return
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                quorum = self.kafka_cluster.quorum()
                if quorum.leader_id >= 0 and quorum.voters == [b.node_id for b in self.brokers]:
                    break
                problem = f"leader {quorum.leader_id}, voters {quorum.voters}"
            except StackError as error:
                problem = str(error)
            if time.monotonic() > deadline:
                raise StackError(f"the Kafka controller quorum has no leader of all voters: {problem}")
            time.sleep(1)
        voters = ",".join(map(str, quorum.voters))
        print(f"[up] kafka quorum           leader node {quorum.leader_id}, voters {voters}", flush=True)

    def airflow_parts(self, since: float = 0.0) -> list[Part]:
        """Airflow's components: started by `up` after the migration, healthy once they heartbeat after ``since``."""
        airflow = str(VENV_BIN / "airflow")
        return [
            Part(
                f"airflow-{component}",
                [airflow, component, *airflow_parts.COMPONENT_OPTIONS.get(component, ())],
                airflow_parts.api_port() if component == "api-server" else None,
                airflow_parts.component_healthy(component, since),
                start_timeout=300,
                autostart=False,
            )
            for component in airflow_parts.COMPONENTS
        ]
