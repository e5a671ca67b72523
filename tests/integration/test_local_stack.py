"""`make up` / `make down` for real: supervisord runs Kafka, Redis and Airflow, on ports of the test's choosing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import local_stack
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stack_env(state: Path, **ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
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
    return {name: local_stack.free_port() for name in ("kafka", "controller", "redis", "airflow")}


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


def test_up_runs_a_dag_on_the_real_scheduler_and_down_stops_everything(tmp_path):
    ports = free_ports()
    env = stack_env(tmp_path / "state", **ports)
    try:
        up = stack("up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        for part in (
            "kafka",
            "redis",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        ):
            assert f"[up] {part} " in up.stdout
        status = stack("status", env)
        assert status.stdout.count("RUNNING") == 6, status.stdout

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
    for name in ("kafka", "redis", "airflow"):
        assert not local_stack.port_in_use(ports[name]), f"{name} still listens on {ports[name]} after down"
