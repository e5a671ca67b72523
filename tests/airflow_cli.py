"""Running the Airflow CLI as a user does, from tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time


def airflow_dags_test(env: dict[str, str], dag_id: str, conf: dict, timeout: float = 600) -> tuple[int, str, float]:
    """``airflow dags test DAG --conf CONF``: (exit code, stdout + stderr, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id, "--conf", json.dumps(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started
