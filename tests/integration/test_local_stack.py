"""`make up` / `make down` for real: supervisord runs Kafka, Redis and Airflow, on ports of the test's choosing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from stack_helpers import REPO, free_ports, run_demo, stack, stack_env, state_dir, up_and_check

from devstack.paths import DEPS
from devstack.ports import port_in_use

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


def interrupt_make_up(env: dict[str, str], reached: Callable[[str, psutil.Process], bool], log: Path) -> str:
    """Run `make up`, SIGTERM its whole process group once ``reached(output, make)`` says so; return its output."""
    with open(log, "wb") as out:
        make = subprocess.Popen(["make", "up"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not reached(log.read_text(errors="replace"), psutil.Process(make.pid)):
            assert make.poll() is None, f"`make up` ended before the phase to interrupt:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(60)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    return log.read_text(errors="replace")


def printed(line: str, after_s: float = 0.0) -> Callable[[str, psutil.Process], bool]:
    """Reached ``after_s`` seconds after `make up` printed ``line``."""
    seen: list[float] = []

    def check(output: str, _: psutil.Process) -> bool:
        if line in output and not seen:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= after_s

    return check


def test_up_on_postgres_converges_after_interruptions_runs_a_dag_and_down_stops_everything():
    """`make up` interrupted in each phase, each next one carrying on; then Airflow on PostgreSQL runs a DAG.

    Each interrupted run must get past the phase the one before it was stopped in (a run that could not
    would never print the next phase's line), and the last, uninterrupted one must bring everything up.
    The SQLite stack runs the pipeline itself, in test_running_stack.py.
    """
    ports = free_ports()
    state = state_dir()
    env = stack_env(state / "state", "postgres", **ports)
    # A warm setup takes milliseconds: make it redo one step (compiling the JVM parser; the jar is replaced
    # only when complete), and stop it there.
    (DEPS / "stamps" / "spark-parser").unlink(missing_ok=True)
    # Each phase: when to interrupt it, and a line its run must not have got to (so it was stopped in it).
    phases = {
        "setup": (printed("[setup] compiling the Spark event parser"), "[up]"),
        "services": (printed("[up] starting the services under supervisord"), "[up] migrating"),
        "migration": (printed("[up] migrating the Airflow metadata DB", after_s=3), "[up] starting Airflow"),
        "Airflow start": (printed("[up] starting Airflow", after_s=1), "[up] airflow-scheduler"),
    }
    try:
        for phase, (reached, not_yet) in phases.items():
            output = interrupt_make_up(env, reached, state / f"make-up-{phase.replace(' ', '-')}.log")
            assert not_yet not in output, f"`make up` was not stopped in the {phase} phase:\n{output}"
        up_and_check(env, ("postgres",))
        assert "clickstream_smoke finished: success" in run_demo(env, "clickstream_smoke", timeout=300)
    finally:
        down = stack("down", env)
    assert down.returncode == 0, down.stderr
    for name in ("kafka", "redis", "airflow", "prometheus", "alertmanager", "smtp", "postgres"):
        assert not port_in_use(ports[name]), f"{name} still listens on {ports[name]} after down"
    # The runs went to PostgreSQL, not to a SQLite file.
    assert (state / "state" / "postgres" / "data" / "PG_VERSION").exists()
    assert not (state / "state" / "postgres" / "data.initdb").exists()
    assert not (state / "state" / "airflow" / "airflow.db").exists()
    shutil.rmtree(state, ignore_errors=True)
