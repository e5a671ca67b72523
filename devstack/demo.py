"""`make demo`: trigger clickstream_pipeline on the running local stack, wait, and show what it counted.

It talks to the running Airflow through its REST API, as the local admin: the run, its tasks' states and
their XComs (the burst's ground truth and the reconciler's report). The counts come from Redis itself.
"""

from __future__ import annotations

import time

from devstack import airflow_parts
from devstack.airflow_api import AirflowApi
from devstack.paths import STATE
from devstack.ports import port_from_env
from devstack.redis_server import RedisServer


def show_counts(burst: dict, top: int = 10) -> None:
    """The burst's busiest pages as Redis holds them, per window, beside what was sent."""
    from clickstream import redis_layout
    from clickstream.schema import WINDOW_MS, window_label

    truth = burst["ground_truth"]
    labels = [window_label(w) for w in range(truth["first_window_ms"], truth["last_window_ms"] + 1, WINDOW_MS)]
    client = RedisServer(STATE / "redis", port_from_env("CLICKSTREAM_REDIS_PORT", 6379)).client("reader")
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


def run(dag_id: str = "clickstream_pipeline", timeout: float = 600) -> int:
    """Trigger ``dag_id``, wait for the run, print what it did; 0 if it succeeded."""
    api = AirflowApi()
    api.wait_for_dag(dag_id, 120)
    api.unpause(dag_id)
    run_id = api.trigger(dag_id)
    print(f"[demo] triggered {dag_id} run {run_id}", flush=True)

    started = time.monotonic()
    state = api.wait_for_run(dag_id, run_id, timeout)
    print(f"[demo] {dag_id} finished: {state} after {time.monotonic() - started:.1f}s")
    for task_id, task_state in api.task_states(dag_id, run_id).items():
        print(f"[demo]   {task_id:<20} {task_state}")

    if dag_id == "clickstream_pipeline" and state == "success":
        show_counts(api.xcom(dag_id, run_id, "start_producer"))
        show_report(api.xcom(dag_id, run_id, "run_spark_batch"))
    print(f"[demo] Airflow UI: {api.base}/dags/{dag_id}")
    print(airflow_parts.login_hint())
    return 0 if state == "success" else 1
