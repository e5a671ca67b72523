"""`make up` / `make down` for real: supervisord runs Kafka, Redis and Airflow, on ports of the test's choosing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import local_stack
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


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
    )
    return env


def stack(action: str, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/local_stack.py"), action],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def free_ports() -> dict[str, int]:
    return {name: local_stack.free_port() for name in ("kafka", "controller", "redis", "airflow", "postgres")}


def state_dir() -> Path:
    """A state folder that PostgreSQL's own user can reach when the tests run as root (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="clickstream-stack-", dir="/tmp"))
    path.chmod(0o755)
    return path


def test_taken_port_fails_fast_naming_the_port_and_the_variable(tmp_path):
    ports = free_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["redis"]))
        holder.listen()
        started = time.monotonic()
        result = stack("up", stack_env(tmp_path / "state", **ports), timeout=60)
    assert result.returncode == 1
    assert f"port {ports['redis']} (redis) is already in use" in result.stderr
    assert "CLICKSTREAM_REDIS_PORT" in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "state" / "supervisord.pid").exists()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_up_runs_a_dag_on_the_real_scheduler_and_down_stops_everything(db):
    ports = free_ports()
    state = state_dir()
    env = stack_env(state / "state", db, **ports)
    try:
        up = stack("up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        parts = [
            "kafka",
            "redis",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        ]
        parts += ["postgres"] if db == "postgres" else []
        for part in parts:
            assert f"[up] {part} " in up.stdout
        status = stack("status", env)
        assert status.stdout.count("RUNNING") == len(parts), status.stdout

        # A second `up` on a running stack is a health check, not a second stack.
        again = stack("up", env)
        assert again.returncode == 0 and "already running" in again.stdout

        demo = subprocess.run(
            [sys.executable, str(REPO / "scripts/demo.py"), "--dag-id", "clickstream_smoke", "--timeout", "300"],
            capture_output=True,
            text=True,
            env=env,
            timeout=420,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "clickstream_smoke finished: success" in demo.stdout
    finally:
        down = stack("down", env)
    assert down.returncode == 0, down.stderr
    for name in ("kafka", "redis", "airflow", *(["postgres"] if db == "postgres" else [])):
        assert not local_stack.port_in_use(ports[name]), f"{name} still listens on {ports[name]} after down"
    if db == "postgres":
        # The runs went to PostgreSQL, not to a SQLite file.
        assert (state / "state" / "postgres" / "data" / "PG_VERSION").exists()
        assert not (state / "state" / "airflow" / "airflow.db").exists()
    shutil.rmtree(state, ignore_errors=True)
