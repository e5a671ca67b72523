"""No secret of the local stack shows where others can read it: process lists, logs, task logs, XComs.

Runs on the shared stack after a pipeline run (test_stack_observability.py runs two; this test runs one
itself when it comes first), so the task logs and XComs it scans are real ones.
"""

from __future__ import annotations

import json

import psutil
import pytest
from stack_helpers import LocalStack, run_demo

from devstack.airflow_parts import passwords

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local_stack")]

PIPELINE = "clickstream_pipeline"


def stack_secrets(stack: LocalStack) -> dict[str, str]:
    """Every secret the stack generated: the UI users' passwords and the keys Airflow's components share."""
    found = {f"password of {user}": password for user, password in passwords(stack.state / "airflow").items()}
    shared = stack.state / "secrets.json"
    assert shared.stat().st_mode & 0o077 == 0, f"{shared} is readable by others"
    found.update(json.loads(shared.read_text()))
    assert found and all(len(value) >= 16 for value in found.values()), found.keys()
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def test_no_secret_is_in_a_command_line_a_log_a_task_log_or_an_xcom(local_stack: LocalStack):
    api = local_stack.api
    if not api.runs(PIPELINE):
        assert f"{PIPELINE} finished: success" in run_demo(local_stack.env, PIPELINE)
    secrets = stack_secrets(local_stack)
    found: list[str] = []

    # Every process on the machine: the stack's parts, Airflow's components and task processes, Spark jobs.
    processes = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        processes += 1
        found += [f"{name} in the command line of pid {proc.info['pid']}" for name in leaks(cmdline, secrets)]

    # Every log the stack wrote: its parts' (supervisord's files), Airflow's components' and tasks', Spark's.
    logs = [*(local_stack.state / "logs").rglob("*"), *(local_stack.state / "airflow" / "logs").rglob("*")]
    logs = [path for path in logs if path.is_file()]
    for path in logs:
        found += [f"{name} in {path}" for name in leaks(path.read_text(errors="replace"), secrets)]

    # Every XCom of every pipeline run.
    xcoms = 0
    for run in api.runs(PIPELINE):
        run_id = run["dag_run_id"]
        for task_id in api.task_states(PIPELINE, run_id):
            entries = api.get(f"/api/v2/dags/{PIPELINE}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries")
            for entry in entries["xcom_entries"]:
                value = json.dumps(api.xcom(PIPELINE, run_id, task_id, entry["key"]))
                xcoms += 1
                found += [f"{name} in XCom {task_id}.{entry['key']} of {run_id}" for name in leaks(value, secrets)]

    print(f"scanned {processes} command lines, {len(logs)} log files, {xcoms} XComs for {len(secrets)} secrets")
    assert processes > 20 and len(logs) > 10 and xcoms >= 3
    assert not found, found
