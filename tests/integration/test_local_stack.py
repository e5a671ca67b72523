"""`make up` / `make down` for real: supervisord runs Kafka, Redis and Airflow, on ports of the test's choosing."""

from __future__ import annotations

import shutil
import socket
import time

import local_stack
import pytest
from stack_helpers import free_ports, run_demo, stack, stack_env, state_dir, up_and_check

pytestmark = pytest.mark.integration


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


def test_up_on_postgres_runs_a_dag_on_the_real_scheduler_and_down_stops_everything():
    """Airflow on PostgreSQL (the SQLite stack runs the pipeline itself, in test_stack_observability.py)."""
    ports = free_ports()
    state = state_dir()
    env = stack_env(state / "state", "postgres", **ports)
    try:
        up_and_check(env, ("postgres",))
        assert "clickstream_smoke finished: success" in run_demo(env, "clickstream_smoke", timeout=300)
    finally:
        down = stack("down", env)
    assert down.returncode == 0, down.stderr
    for name in ("kafka", "redis", "airflow", "prometheus", "alertmanager", "smtp", "postgres"):
        assert not local_stack.port_in_use(ports[name]), f"{name} still listens on {ports[name]} after down"
    # The runs went to PostgreSQL, not to a SQLite file.
    assert (state / "state" / "postgres" / "data" / "PG_VERSION").exists()
    assert not (state / "state" / "airflow" / "airflow.db").exists()
    shutil.rmtree(state, ignore_errors=True)
