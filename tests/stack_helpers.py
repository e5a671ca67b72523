"""Helpers for tests that run the local stack (`make up`) on ports of their own choosing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.ports import free_port

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
        CLICKSTREAM_REDIS_PORT=str(ports["redis"]),
        CLICKSTREAM_AIRFLOW_PORT=str(ports["airflow"]),
        AIRFLOW_CONN_KAFKA_DEFAULT=json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": f"127.0.0.1:{ports['kafka']}", "group.id": "t"}}
        ),
        AIRFLOW_CONN_REDIS_DEFAULT=f"redis://127.0.0.1:{ports['redis']}/0",
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
    # Airflow's log servers (the scheduler's and the triggerer's): two stacks at once must not share them.
    # DAG files parsed every 10 s rather than 30: the tests wait for a changed Variable to reach the DAG.
    env.update(
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(ports["worker_logs"]),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(ports["trigger_logs"]),
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="10",
    )
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


MONITORING_PORT_VARIABLES = {
    "prometheus": "CLICKSTREAM_PROMETHEUS_PORT",
    "alertmanager": "CLICKSTREAM_ALERTMANAGER_PORT",
    "statsd_exporter": "CLICKSTREAM_STATSD_EXPORTER_PORT",
    "statsd": "CLICKSTREAM_STATSD_PORT",
    "redis_exporter": "CLICKSTREAM_REDIS_EXPORTER_PORT",
    "kafka_metrics": "CLICKSTREAM_KAFKA_METRICS_PORT",
    "smtp": "CLICKSTREAM_SMTP_PORT",
    "spark_metrics": "CLICKSTREAM_SPARK_METRICS_PORT",
}


def free_ports() -> dict[str, int]:
    names = ("kafka", "controller", "redis", "airflow", "postgres", "worker_logs", "trigger_logs",
             *MONITORING_PORT_VARIABLES)  # fmt: skip
    return {name: free_port() for name in names}


def state_dir() -> Path:
    """A state folder that PostgreSQL's own user can reach when the tests run as root (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="clickstream-stack-", dir="/tmp"))
    path.chmod(0o755)
    return path


def run_demo(env: dict[str, str], dag_id: str, timeout: float = 400) -> str:
    """`make demo`'s driver against the stack: trigger ``dag_id``, wait for it, return what it printed."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/demo.py"), "--dag-id", dag_id, "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout + 120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def up_and_check(env: dict[str, str], extra_parts: tuple[str, ...] = ()) -> None:
    """`make up`, every part healthy and running; a second `up` is a health check, not a second stack."""
    parts = (*STACK_PARTS, *extra_parts)
    up = stack("up", env)
    assert up.returncode == 0, up.stdout + up.stderr
    for part in parts:
        assert f"[up] {part} " in up.stdout, f"{part} not reported healthy:\n{up.stdout}"
    status = stack("status", env)
    assert status.stdout.count("RUNNING") == len(parts), status.stdout
    again = stack("up", env)
    assert again.returncode == 0 and "already running" in again.stdout
