"""Helpers for tests that run the local stack (`make up`) on ports of their own choosing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devstack.airflow_api import AirflowApi
from devstack.kafka_broker import KafkaBroker
from devstack.kafka_cluster import KafkaCluster, NodePorts
from devstack.ports import MONITORING_PORT_VARIABLES, free_port, port_in_use
from devstack.redis_server import RedisServer

REPO = Path(__file__).resolve().parent.parent
STACK_PARTS = (
    "kafka",
    "redis",
    "statsd-exporter",
    "redis-exporter",
    "prometheus",
    "alertmanager",
    "mail",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)


def stack_env(state: Path, db: str = "sqlite", **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env["CLICKSTREAM_AIRFLOW_DB"] = db
    if db == "postgres":
        env["CLICKSTREAM_POSTGRES_PORT"] = str(ports["postgres"])
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
            f"postgresql+psycopg2://airflow@127.0.0.1:{ports['postgres']}/airflow"
        )
    env.update(
        CLICKSTREAM_STATE=str(state),
        AIRFLOW_HOME=str(state / "airflow"),
        CLICKSTREAM_KAFKA_PORT=str(ports["kafka"]),
        CLICKSTREAM_KAFKA_CONTROLLER_PORT=str(ports["controller"]),
        CLICKSTREAM_KAFKA_INTERNAL_PORT=str(ports["kafka_internal"]),
        CLICKSTREAM_REDIS_PORT=str(ports["redis"]),
        CLICKSTREAM_AIRFLOW_PORT=str(ports["airflow"]),
        AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[2]", "extra": {"deploy-mode": "client"}}',
        AIRFLOW_CONN_SMTP_DEFAULT=json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": ports["smtp"],
                "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@clickstream.local"},
            }
        ),
    )
    env.update({variable: str(ports[name]) for name, variable in MONITORING_PORT_VARIABLES.items()})
    return env


def stack(action: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", action],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def free_ports() -> dict[str, int]:
    names = ("kafka", "controller", "kafka_internal", "redis", "airflow", "postgres", *MONITORING_PORT_VARIABLES)
    return {name: free_port() for name in names}


def state_dir() -> Path:
    """A state folder that PostgreSQL's own user can reach when the tests run as root (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="clickstream-stack-", dir="/tmp"))
    path.chmod(0o755)
    return path


def run_demo(env: dict[str, str], dag_id: str, timeout: float = 400) -> str:
    """`make demo`'s driver against the stack: trigger ``dag_id``, wait for it, return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "demo", "--dag-id", dag_id, "--timeout", str(timeout)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout + 120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


CLUSTER_PARTS = (
    "kafka-1",
    "kafka-2",
    "kafka-3",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    *(part for part in STACK_PARTS if part != "kafka"),
)


def up_and_check(env: dict[str, str], extra_parts: tuple[str, ...] = (), parts: tuple[str, ...] = STACK_PARTS) -> str:
    """`make up`, every part healthy and running; a second `up` is a health check, not a second stack.

    Returns what the first `up` printed."""
    parts = (*parts, *extra_parts)
    up = stack("up", env)
    assert up.returncode == 0, up.stdout + up.stderr
    for part in parts:
        assert f"[up] {part} " in up.stdout, f"{part} not reported healthy:\n{up.stdout}"
    status = stack("status", env)
    assert status.stdout.count("RUNNING") == len(parts), status.stdout
    again = stack("up", env)
    assert again.returncode == 0 and "already running" in again.stdout
    return up.stdout


@dataclass
class LocalStack:
    """A running `make up` stack on ports of its own: its ports, its state folder and its environment."""

    ports: dict[str, int]
    root: Path  # holds the stack's state folder and whatever a test keeps beside it
    env: dict[str, str]
    api: AirflowApi = field(init=False)
    up_output: str = ""

    def __post_init__(self) -> None:
        self.api = self.api_as("admin")

    def api_as(self, username: str, password: str | None = None) -> AirflowApi:
        """The stack's REST API as ``username``, with the password the stack generated unless given one."""
        return AirflowApi(self.ports["airflow"], username, password, airflow_home=self.state / "airflow")

    @property
    def state(self) -> Path:
        return self.root / "state"

    def redis(self, user: str = "admin") -> redis.Redis:
        """A client of the stack's Redis as one of its ACL users."""
        return RedisServer(self.state / "redis", self.ports["redis"]).client(user)

    def kafka(self) -> KafkaBroker:
        """The stack's broker as its files describe it: for its principals' client settings."""
        return KafkaBroker(
            self.state / "kafka", self.ports["kafka"], self.ports["controller"], self.ports["kafka_internal"]
        )

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(self.state / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout + result.stderr

    def keep_logs(self, kept: Path) -> None:
        """Copy what the stack's parts and Airflow's tasks logged to ``kept``: a failure here is slow to reproduce."""
        import shutil

        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        if (self.state / "logs").is_dir():
            shutil.copytree(self.state / "logs", kept, dirs_exist_ok=True)
        airflow_logs = self.state / "airflow" / "logs"
        for log in airflow_logs.rglob("*.log"):
            target = kept / "airflow" / log.relative_to(airflow_logs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, target)
        for log in self.root.glob("*.log"):
            shutil.copy(log, kept / log.name)

    def down_and_check(self) -> None:
        """`make down`: it succeeds and nothing of the stack listens any more."""
        down = stack("down", self.env)
        assert down.returncode == 0, down.stderr
        for name in ("kafka", "redis", "airflow", "prometheus", "alertmanager", "smtp", "statsd_exporter"):
            assert not port_in_use(self.ports[name]), f"{name} still listens on {self.ports[name]} after down"


def local_stack_on_free_ports() -> LocalStack:
    """A stack not started yet, with fast scrapes and alerts (Alertmanager mails 1 s after an alert held 5 s)."""
    ports = free_ports()
    root = state_dir()
    env = stack_env(root / "state", "sqlite", **ports)
    env.update(CLICKSTREAM_SCRAPE_INTERVAL="2s", CLICKSTREAM_ALERT_FOR="5s", CLICKSTREAM_ALERT_GROUP_WAIT="1s")
    return LocalStack(ports, root, env)


@dataclass
class ClusterStack(LocalStack):
    """A running `CLICKSTREAM_TOPOLOGY=cluster make up` stack: three KRaft nodes, a Spark master, two workers."""

    def kafka(self) -> KafkaCluster:  # type: ignore[override]
        nodes = [
            NodePorts(self.ports[f"kafka{i}"], self.ports[f"controller{i}"], self.ports[f"kafka_internal{i}"])
            for i in (1, 2, 3)
        ]
        return KafkaCluster.build(self.state / "kafka-cluster", nodes)

    def master_state(self) -> dict:
        from devstack.spark_cluster import master_state

        return master_state(self.ports["spark_master_ui"]) or {}

    def down_and_check(self) -> None:
        super().down_and_check()
        for name in ("kafka1", "kafka2", "kafka3", "spark_master", "worker1", "worker2"):
            assert not port_in_use(self.ports[name]), f"{name} still listens on {self.ports[name]} after down"


def cluster_stack_on_free_ports() -> ClusterStack:
    """The cluster topology, not started yet, on ports of its own (the single node's kafka ports go unused)."""
    single = local_stack_on_free_ports()
    ports = dict(single.ports)
    env = dict(single.env)
    env["CLICKSTREAM_TOPOLOGY"] = "cluster"
    # Its tests change no DAG file and no Variable a DAG reads when parsed: the dag-processor parses each
    # file at start and then every 10 minutes, not every 30 s (each parse is a process costing a second of CPU).
    env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] = "600"
    for i in (1, 2, 3):
        for key, variable in (
            (f"kafka{i}", f"CLICKSTREAM_KAFKA_NODE{i}_PORT"),
            (f"controller{i}", f"CLICKSTREAM_KAFKA_NODE{i}_CONTROLLER_PORT"),
            (f"kafka_internal{i}", f"CLICKSTREAM_KAFKA_NODE{i}_INTERNAL_PORT"),
            (f"kafka_metrics{i}", f"CLICKSTREAM_KAFKA_NODE{i}_METRICS_PORT"),
        ):
            ports[key] = free_port()
            env[variable] = str(ports[key])
    for key, variable in (
        ("spark_master", "CLICKSTREAM_SPARK_MASTER_PORT"),
        ("spark_master_ui", "CLICKSTREAM_SPARK_MASTER_UI_PORT"),
        ("worker1", "CLICKSTREAM_SPARK_WORKER1_PORT"),
        ("worker1_ui", "CLICKSTREAM_SPARK_WORKER1_UI_PORT"),
        ("worker2", "CLICKSTREAM_SPARK_WORKER2_PORT"),
        ("worker2_ui", "CLICKSTREAM_SPARK_WORKER2_UI_PORT"),
    ):
        ports[key] = free_port()
        env[variable] = str(ports[key])
    master = {"conn_type": "spark", "host": "spark://127.0.0.1", "port": ports["spark_master"]}
    env["AIRFLOW_CONN_SPARK_DEFAULT"] = json.dumps({**master, "extra": {"deploy-mode": "client"}})
    return ClusterStack(ports, single.root, env)


def prometheus_query(port: int, expr: str) -> list[dict]:
    """An instant query to the stack's Prometheus; its result list (the query must succeed)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]
