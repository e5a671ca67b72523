"""Running the Airflow CLI as a user does, from tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``airflow ARGS`` with this venv's Airflow, in ``env``; the caller judges the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def airflow_dags_test(env: dict[str, str], dag_id: str, conf: dict, timeout: float = 600) -> tuple[int, str, float]:
    """``airflow dags test DAG --conf CONF``: (exit code, stdout + stderr, seconds)."""
    started = time.monotonic()
    result = airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf), timeout=timeout)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started
