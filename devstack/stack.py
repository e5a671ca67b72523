"""Which parts make the local stack, and bringing it up and down.

``up`` converges: whatever an earlier, interrupted ``up`` left behind (supervisord running or not, a metadata
DB half migrated, Airflow's components crash-looping on it), it starts what is missing, always migrates,
and then starts and waits for Airflow's components.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import airflow_parts, monitoring, supervisor
from devstack.errors import StackError
from devstack.kafka_broker import KafkaBroker
from devstack.paths import DEPS, KAFKA_LIBS, LOGS, SPARK_APPS, STATE, VENV_BIN
from devstack.ports import check_ports_free, port_from_env
from devstack.postgres_server import PostgresServer
from devstack.processes import pid_alive, wait_until
from devstack.redis_server import RedisServer
from devstack.supervisor import Part, supervisorctl


@dataclass
class Topology:
    """The stack's services as configured by the environment (``scripts/env.sh``), each built once.

    One broker and one Redis today; a cluster is more entries in ``brokers`` (each its own supervised part).
    """

    brokers: list[KafkaBroker]
    redis: RedisServer
    postgres: PostgresServer | None
    ports: monitoring.MonitoringPorts
    monitoring: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Topology:
        ports = monitoring.MonitoringPorts.from_env()
        agent = monitoring.kafka_jmx_agent(KAFKA_LIBS, ports.kafka_metrics)  # the broker's metrics for Prometheus
        broker = KafkaBroker(
            STATE / "kafka",
            port_from_env("CLICKSTREAM_KAFKA_PORT", 9092),
            port_from_env("CLICKSTREAM_KAFKA_CONTROLLER_PORT", 9097),
            port_from_env("CLICKSTREAM_KAFKA_INTERNAL_PORT", 9094),
            jvm_options=(agent,),
        )
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
            ),
            "alertmanager": monitoring.Alertmanager(STATE / "alertmanager", ports),
            "mail": monitoring.MailSink(STATE / "mail", ports, str(VENV_BIN / "python")),
        }
        return cls([broker], redis_server, postgres, ports, parts)

    def taken_ports(self) -> dict[str, tuple[int, str]]:
        """Each TCP port the stack listens on, with the variable that moves it."""
        ports: dict[str, tuple[int, str]] = {}
        for broker in self.brokers:
            ports["kafka"] = (broker.port, "CLICKSTREAM_KAFKA_PORT")
            ports["kafka controller"] = (broker.controller_port, "CLICKSTREAM_KAFKA_CONTROLLER_PORT")
            ports["kafka internal"] = (broker.internal_port, "CLICKSTREAM_KAFKA_INTERNAL_PORT")
        ports["redis"] = (self.redis.port, "CLICKSTREAM_REDIS_PORT")
        ports["airflow api-server"] = (airflow_parts.api_port(), "CLICKSTREAM_AIRFLOW_PORT")
        if self.postgres is not None:
            ports["postgres"] = (self.postgres.port, "CLICKSTREAM_POSTGRES_PORT")
        ports.update(self.ports.env_vars())
        return ports

    def prepare(self) -> None:
        """Each service's files: idempotent, and safe to run again after an interrupted run."""
        for broker in self.brokers:
            broker.prepare()
        self.redis.prepare()
        for part in self.monitoring.values():
            if hasattr(part, "prepare"):
                part.prepare()
        if self.postgres is not None:
            self.postgres.prepare()

    def service_parts(self) -> list[Part]:
        parts = [
            Part("kafka" if len(self.brokers) == 1 else f"kafka-{i}", b.command(), b.port, b.healthy)
            for i, b in enumerate(self.brokers)
        ]
        parts.append(Part("redis", self.redis.command(), self.redis.port, self.redis.healthy))
        parts += [Part(name, part.command(), None, part.healthy) for name, part in self.monitoring.items()]
        if self.postgres is not None:
            pg = self.postgres
            parts.append(Part("postgres", pg.command(), pg.port, pg.healthy, user=pg.run_as))
        return parts

    def airflow_parts(self, since: float = 0.0) -> list[Part]:
        """Airflow's components: started by `up` after the migration, healthy once they heartbeat after ``since``."""
        airflow = str(VENV_BIN / "airflow")
        return [
            Part(
                f"airflow-{component}",
                [airflow, component, *airflow_parts.COMPONENT_OPTIONS.get(component, ())],
                airflow_parts.api_port() if component == "api-server" else None,
                airflow_parts.component_healthy(component, since),
                start_timeout=180,
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
        connections = {**topology.brokers[0].airflow_connections(), **topology.redis.airflow_connections()}
        for name, uri in connections.items():
            if (
                name.startswith("AIRFLOW_CONN_KAFKA_")
                and name in os.environ
                and "sasl.username" not in os.environ[name]
            ):
                print(f"[up] warning: {name} from your environment has no login; the broker requires one "
                      "(unset it to use the stack's)", flush=True)  # fmt: skip
            os.environ.setdefault(name, uri)
        supervisor.start(services + topology.airflow_parts())
    else:
        print("[up] supervisord is already running: starting whatever it does not run", flush=True)
        for broker in topology.brokers:
            if broker.config_file.exists() and "INTERNAL://" not in broker.config_file.read_text():
                raise StackError(
                    "the running stack's Kafka broker predates its SASL listeners: run `make down`, then `make up` "
                    "(the data is kept)"
                )
        start_programs([p.name for p in services])
    wait_healthy(services, started)
    for broker in topology.brokers:  # idempotent: a restarted stack gets any user or ACL it lacks
        broker.ensure_principals()
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
    broker = Topology.from_env().brokers[0]
    if not broker.healthy():
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
    try:
        return path.read_text(errors="replace")[-limit:] or "(empty)"
    except OSError as error:
        return f"(unreadable: {error})"


def wait_healthy(parts: list[Part], started_at: float) -> None:
    """Poll every part until all answer their health check; fail naming the first that does not.

    Parts start together under supervisord, so each one's start-up time is measured from the same moment.
    """
    ready: set[str] = set()
    while len(ready) < len(parts):
        elapsed = time.monotonic() - started_at
        for part in parts:
            if part.name in ready:
                continue
            if part.healthy():
                ready.add(part.name)
                where = f" on 127.0.0.1:{part.port}" if part.port else ""
                print(f"[up] {part.name:<22} healthy{where} {time.monotonic() - started_at:.1f}s", flush=True)
            elif elapsed > part.start_timeout:
                status = supervisorctl("status", part.name).stdout.strip() or "not running"
                raise StackError(
                    f"{part.name} did not become healthy within {part.start_timeout:.0f}s ({status}); "
                    f"its log {part.log_file} ends:\n{log_tail(part.log_file)}"
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
