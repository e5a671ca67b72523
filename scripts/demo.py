"""`make demo`: trigger clickstream_pipeline on the running local stack, wait, and show what it counted.

It uses the Airflow CLI to trigger and watch the run (as a user would), the REST API for the tasks'
XComs (the burst's ground truth and the reconciler's report), and Redis for the counts themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

API = f"http://127.0.0.1:{os.environ.get('CLICKSTREAM_AIRFLOW_PORT', '8080')}"


def airflow(*args: str) -> str:
    result = subprocess.run(["airflow", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"[demo] `airflow {' '.join(args)}` failed:\n{result.stderr[-3000:]}")
    return result.stdout


def json_tail(output: str) -> list[dict[str, object]]:
    """The JSON is the last line: the CLI printed log lines before it on stdout (apache/airflow#66139).

    Airflow 3.3.1 removes that (apache/airflow#68598 sends the log of ``--output`` commands to stderr); the
    project allows Airflow 3.3.0, which still has it.
    """
    return json.loads(output.strip().splitlines()[-1])


def wait_for_parse(dag_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(d["dag_id"] == dag_id for d in json_tail(airflow("dags", "list", "--output", "json"))):
            return
        time.sleep(3)
    raise SystemExit(f"[demo] the dag-processor did not parse {dag_id} within {timeout:.0f}s: see .state/logs")


def api_xcom(dag_id: str, run_id: str, task_id: str) -> object:
    """A task's return value through Airflow's REST API (authenticated as the local admin)."""
    login = json.dumps(
        {"username": "admin", "password": os.environ.get("CLICKSTREAM_ADMIN_PASSWORD", "admin")}
    ).encode()
    request = urllib.request.Request(
        f"{API}/auth/token", data=login, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        token = json.load(response)["access_token"]
    dag, run, task = (urllib.parse.quote(part, safe="") for part in (dag_id, run_id, task_id))
    url = f"{API}/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/xcomEntries/return_value?deserialize=true"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["value"]


def show_counts(burst: dict, top: int = 10) -> None:
    """The burst's busiest pages as Redis holds them, per window, beside what was sent."""
    import redis

    from clickstream import redis_layout
    from clickstream.schema import WINDOW_MS, window_label

    truth = burst["ground_truth"]
    labels = [window_label(w) for w in range(truth["first_window_ms"], truth["last_window_ms"] + 1, WINDOW_MS)]
    client = redis.Redis(port=int(os.environ.get("CLICKSTREAM_REDIS_PORT", "6379")))
    pages = sorted(truth["page_totals"], key=lambda p: -truth["page_totals"][p])[:top]
    cells = redis_layout.read_counts(client, pages)
    print(f"[demo] per-page counts in Redis (HGET click_count:<page> <window>), top {top} of the burst's pages:")
    print(f"[demo]   {'page':<22} {'sent':>6} {'in Redis':>9}   windows")
    for page in pages:
        per_window = {label: cells[(page, label)] for label in labels if (page, label) in cells}
        held = sum(per_window.values())
        shown = ", ".join(f"{label[11:16]}={n}" for label, n in per_window.items())
        print(f"[demo]   {page:<22} {truth['page_totals'][page]:>6} {held:>9}   {shown}")


def show_report(report: dict) -> None:
    print(
        f"[demo] reconciler (run_spark_batch): {report['events_read']} events read, "
        f"{report['valid_events']} valid, invalid by reason {report['invalid_events']}"
    )
    print(
        f"[demo]   {report['cells_compared']} window cells compared, {report['cells_matching']} matching, "
        f"{report['cells_missing_in_redis']} missing and {report['cells_short_in_redis']} short in Redis "
        f"({report['events_missing_from_redis']} events), {report['repaired_cells']} repaired"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dag-id", default="clickstream_pipeline")
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

    if args.dag_id == "clickstream_pipeline" and state == "success":
        show_counts(api_xcom(args.dag_id, run_id, "start_producer"))  # type: ignore[arg-type]
        show_report(api_xcom(args.dag_id, run_id, "run_spark_batch"))  # type: ignore[arg-type]
    print(
        f"[demo] Airflow UI: {API}/dags/{args.dag_id}  (user admin, password from "
        "CLICKSTREAM_ADMIN_PASSWORD, default admin)"
    )
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
