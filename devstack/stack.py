"""Which parts make the local stack, and bringing it up and down.

``up`` converges: whatever an earlier, interrupted ``up`` left behind (supervisord running or not, a metadata
DB half migrated, Airflow's components crash-looping on it), it starts what is missing, always migrates,
and then starts and waits for Airflow's components.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import airflow_parts, monitoring, supervisor
from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker
from devstack.kafka_cluster import KafkaCluster, NodePorts
from devstack.paths import DEPS, KAFKA_LIBS, LOGS, SPARK_APPS, SPARK_CONF, STATE, VENV_BIN
from devstack.ports import check_ports_free, port_from_env
from devstack.postgres_server import PostgresServer
from devstack.processes import pid_alive, wait_until
from devstack.redis_server import RedisServer
from devstack.spark_cluster import SparkAuth, SparkMaster, SparkWorker
from devstack.supervisor import Part, supervisorctl


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


def up() -> None:
    """Bring the stack up from whatever state it is in; each phase is safe to repeat."""
    STATE.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(exist_ok=True)
    airflow_parts.load_secrets()
    topology = Topology.from_env()
    services = topology.service_parts()
    started = time.monotonic()
    if supervisor.running_pid() is None:
        print("[up] starting the services under supervisord", flush=True)
        check_ports_free(topology.taken_ports())
        # Streaming jobs started by this stack's Airflow serve Spark's metrics where Prometheus looks for them.
        os.environ.setdefault("AIRFLOW_VAR_CLICKSTREAM_SPARK_METRICS_PORT", str(topology.ports.spark_metrics))
        topology.prepare()
        # Spark jobs started by this stack's Airflow bind their driver and block manager to loopback, as every
        # other part does (Spark picks the host's first non-loopback address otherwise).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Airflow's components reach Kafka and Redis as their least-privileged users (a connection set by the
        # caller wins).
        connections = {**topology.kafka.airflow_connections(), **topology.redis.airflow_connections()}
        for name, uri in connections.items():
            if (
                name.startswith("AIRFLOW_CONN_KAFKA_")
                and name in os.environ
                and "sasl.username" not in os.environ[name]
            ):
                print(f"[up] warning: {name} from your environment has no login; the broker requires one "
                      "(unset it to use the stack's)", flush=True)  # fmt: skip
            os.environ.setdefault(name, uri)
        if topology.spark_master is not None and "spark://" not in os.environ.get("AIRFLOW_CONN_SPARK_DEFAULT", ""):
            print("[up] warning: AIRFLOW_CONN_SPARK_DEFAULT does not point at the cluster's Spark master "
                  f"({topology.spark_master.url}): the jobs will run outside it", flush=True)  # fmt: skip
        if topology.spark_master is not None:
            # Every spark-submit the stack's Airflow runs reads the cluster's secret from there.
            conf_dir = os.environ.setdefault("SPARK_CONF_DIR", str(topology.spark_master.auth.conf_dir))
            if Path(conf_dir) != topology.spark_master.auth.conf_dir:
                print(f"[up] warning: SPARK_CONF_DIR from your environment ({conf_dir}) is not the cluster's "
                      f"({topology.spark_master.auth.conf_dir}): Spark jobs will lack its secret and be refused",
                      flush=True)  # fmt: skip
        supervisor.start(services + topology.airflow_parts())
    else:
        print("[up] supervisord is already running: starting whatever it does not run", flush=True)
        configured = supervisor.CONF.read_text() if supervisor.CONF.exists() else ""
        missing = [p.name for p in services if f"[program:{p.name}]" not in configured]
        if missing:
            raise StackError(
                f"the running stack has no {', '.join(missing)}: it was started with another topology or database "
                f"(CLICKSTREAM_TOPOLOGY={topology.name} now). Run `make down`, then `make up`"
            )
        for broker in topology.brokers:
            if broker.config_file.exists() and "INTERNAL://" not in broker.config_file.read_text():
                raise StackError(
                    "the running stack's Kafka broker predates its SASL listeners: run `make down`, then `make up` "
                    "(the data is kept)"
                )
        start_programs([p.name for p in services])
    wait_healthy(services, started)
    topology.check_quorum()
    topology.kafka.ensure_principals()  # idempotent: a restarted stack gets any user or ACL it lacks
    print("[up] kafka                  users and ACLs in place", flush=True)
    if topology.postgres is not None:
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", topology.postgres.url)
        topology.postgres.ensure_database()
    # Always: a first `up` stopped mid-migration leaves a DB the components refuse to run on.
    print("[up] migrating the Airflow metadata DB", flush=True)
    airflow_parts.migrate()
    print("[up] starting Airflow", flush=True)
    since = time.time()
    components = topology.airflow_parts(since)
    started = time.monotonic()
    start_programs([p.name for p in components])
    wait_healthy(components, started)
    print(f"[up] Airflow UI http://127.0.0.1:{airflow_parts.api_port()}", flush=True)
    print(airflow_parts.login_hint(), flush=True)


def grant(topic: str, dead_letter_topic: str) -> None:
    """The pipeline principals' rights on other topics (the running broker keeps them)."""
    topology = Topology.from_env()
    broker = next((b for b in topology.brokers if b.healthy()), None)
    if broker is None:
        raise StackError("the stack's Kafka broker is not running: `make up` first")
    broker.grant(events=topic, dead_letters=dead_letter_topic)
    print(f"[grant] the pipeline's principals may use {topic} and {dead_letter_topic} as they use clickstream-events")


def start_programs(names: list[str]) -> None:
    """Start each program that is not running: stopped, never started, or given up on (FATAL) alike."""
    result = supervisorctl("start", *names)
    failures = [line for line in result.stdout.splitlines() if "ERROR" in line and "already started" not in line]
    if failures or (result.returncode != 0 and not result.stdout):
        raise StackError(f"supervisorctl could not start {', '.join(names)}: {result.stdout} {result.stderr}")


def log_tail(path: Path, limit: int = 3000) -> str:
    """The end of a part's log without Java stack frames, so the lines that say what went wrong fit."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(unreadable: {error})"
    lines = [line for line in text.splitlines() if not JAVA_FRAME.match(line)]
    return "\n".join(lines)[-limit:] or "(empty)"


JAVA_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")
# Health checks wait on sockets, not CPU: polled side by side, one slow check does not delay the others.
HEALTH_CHECKS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="health")


def wait_healthy(parts: list[Part], started_at: float) -> None:
    """Poll every part until all answer their health check; fail naming the first that does not.

    Parts start together under supervisord, so each one's start-up time is measured from the same moment.
    A part supervisord gave up on (FATAL: it kept exiting) fails at once rather than at its timeout.
    """
    waiting = list(parts)
    while waiting:
        checks = {part.name: HEALTH_CHECKS.submit(part.healthy) for part in waiting}
        elapsed = time.monotonic() - started_at
        for part in list(waiting):
            if checks[part.name].result():
                waiting.remove(part)
                where = f" on 127.0.0.1:{part.port}" if part.port else ""
                print(f"[up] {part.name:<22} healthy{where} {time.monotonic() - started_at:.1f}s", flush=True)
                continue
            status = ""
            if elapsed > part.start_timeout or int(elapsed) % 5 == 0:
                status = supervisorctl("status", part.name).stdout.strip() or "not running"
            if elapsed > part.start_timeout or " FATAL " in f" {status} ":
                reason = (
                    "kept exiting, and supervisord gave up on it"
                    if "FATAL" in status
                    else f"did not become healthy within {part.start_timeout:.0f}s"
                )
                raise StackError(
                    f"{part.name} {reason} ({status}); its log {part.log_file} ends:\n{log_tail(part.log_file)}"
                )
        time.sleep(0.5)


def stop_spark_jobs() -> int:
    """Stop the Spark applications this checkout's Airflow started detached (supervisord does not own them).

    Each gets SIGTERM, so its running batch commits, while Kafka and Redis are still up.
    """
    from clickstream.spark_job import SparkJobHandle

    jobs = SparkJobHandle.running_from(SPARK_APPS, airflow_home=os.environ.get("AIRFLOW_HOME"))
    for job in jobs:
        print(f"[down] stopping Spark job {Path(job.application).name} (pid {job.pid})")
        job.stop(grace_s=60)
    return len(jobs)


def down() -> None:
    pid = supervisor.running_pid()
    if pid is None:
        stop_spark_jobs()
        print("[down] the stack is not running")
        return
    # Airflow first: a scheduler or triggerer still running would restart the Spark job stopped next.
    supervisorctl("stop", *(f"airflow-{component}" for component in airflow_parts.COMPONENTS))
    stop_spark_jobs()
    supervisorctl("shutdown")
    if not wait_until(lambda: not pid_alive(pid), 90, interval=0.5):
        os.kill(pid, signal.SIGKILL)
    print("[down] stopped")


def status() -> int:
    if supervisor.running_pid() is None:
        print("the stack is not running")
        return 1
    print(supervisorctl("status").stdout, end="")
    return 0
