"""`make demo`: trigger a DAG on the running local stack with the Airflow CLI and report how it went."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def airflow(*args: str) -> str:
    result = subprocess.run(["airflow", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"[demo] `airflow {' '.join(args)}` failed:\n{result.stderr[-3000:]}")
    return result.stdout


def json_tail(output: str) -> list[dict[str, object]]:
    """The CLI prints log lines before its JSON; the JSON is the last line."""
    return json.loads(output.strip().splitlines()[-1])


def wait_for_parse(dag_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(d["dag_id"] == dag_id for d in json_tail(airflow("dags", "list", "--output", "json"))):
            return
        time.sleep(3)
    raise SystemExit(f"[demo] the dag-processor did not parse {dag_id} within {timeout:.0f}s: see .state/logs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dag-id", default="clickstream_smoke")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    wait_for_parse(args.dag_id, 120)
    airflow("dags", "unpause", args.dag_id)
    run = json_tail(airflow("dags", "trigger", args.dag_id, "--output", "json"))[0]
    run_id = str(run["dag_run_id"])
    print(f"[demo] triggered {args.dag_id} run {run_id}", flush=True)

    started = time.monotonic()
    state = "queued"
    while time.monotonic() - started < args.timeout:
        runs = json_tail(airflow("dags", "list-runs", args.dag_id, "--output", "json"))
        state = next((str(r["state"]) for r in runs if r["run_id"] == run_id), "unknown")
        if state in ("success", "failed"):
            break
        time.sleep(3)
    print(f"[demo] {args.dag_id} finished: {state} after {time.monotonic() - started:.1f}s")
    for ti in json_tail(airflow("tasks", "states-for-dag-run", args.dag_id, run_id, "--output", "json")):
        print(f"[demo]   {ti['task_id']:<20} {ti['state']}")

    port = os.environ.get("CLICKSTREAM_AIRFLOW_PORT", "8080")
    print(
        f"[demo] Airflow UI: http://127.0.0.1:{port}/dags/{args.dag_id}  (user admin, password from "
        "CLICKSTREAM_ADMIN_PASSWORD, default admin)"
    )
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
