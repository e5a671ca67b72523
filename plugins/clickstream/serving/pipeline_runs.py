"""The pipeline's runs as the Airflow UI's Clickstream view shows them, from Airflow's metadata database.

The serving app runs inside the api-server, so it reads runs and XComs through the api-server's own
database session, as Airflow's public API does, rather than calling that API back over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

from clickstream import redis_layout
from clickstream.schema import WINDOW_MS, window_label
from clickstream.serving.feature_store import BadParameter, NotFound, check_count

MAX_RUNS = 100
MAX_RUN_ID_LENGTH = 250  # Airflow's own limit on a run id
BURST_TASK = "start_producer"
RECONCILER_TASK = "run_spark_batch"


def recent_runs(session: Any, dag_id: str, limit: int) -> list[dict[str, Any]]:
    """The DAG's newest runs first: id, state, type and times (ISO 8601)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    check_count(limit, "limit", MAX_RUNS)
    runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(limit))
    return [
        {
            "run_id": run.run_id,
            "state": str(run.state.value if hasattr(run.state, "value") else run.state),
            "run_type": str(run.run_type.value if hasattr(run.run_type, "value") else run.run_type),
            "run_after": _iso(run.run_after),
            "start_date": _iso(run.start_date),
            "end_date": _iso(run.end_date),
        }
        for run in runs
    ]


def run_state(session: Any, dag_id: str, run_id: str) -> str:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    _check_run_id(run_id)
    state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if state is None:
        raise NotFound(f"{dag_id} has no run {run_id!r}")
    return str(state.value if hasattr(state, "value") else state)


def task_result(session: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value in a run (its ``return_value`` XCom), None when it has none."""
    from airflow.models.xcom import XComModel

    row = session.scalars(
        XComModel.get_many(run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id, limit=1)
    ).first()
    if row is None:
        return None
    row = row[0] if isinstance(row, tuple) else row
    try:
        return XComModel.deserialize_value(row)
    except Exception:  # a value set through the Task Execution API may already be plain JSON
        return json.loads(row.value) if isinstance(row.value, str) else row.value


def run_report(session: Any, client: Any, dag_id: str, run_id: str) -> dict[str, Any]:
    """A run's burst (events sent per page) beside what Redis holds for those pages in the burst's windows,
    and the reconciler's report (None until it ran)."""
    state = run_state(session, dag_id, run_id)
    burst = task_result(session, dag_id, run_id, BURST_TASK)
    if not isinstance(burst, dict) or "ground_truth" not in burst:
        raise NotFound(f"run {run_id!r} has no burst ({BURST_TASK} has not returned its ground truth)")
    truth = burst["ground_truth"]
    labels = [window_label(ms) for ms in range(truth["first_window_ms"], truth["last_window_ms"] + 1, WINDOW_MS)]
    sent: dict[str, int] = {page: int(n) for page, n in truth["page_totals"].items()}
    held = redis_layout.read_counts(client, sent)
    pages = []
    for page in sorted(sent, key=lambda p: (-sent[p], p)):
        per_window = {label: held[(page, label)] for label in labels if (page, label) in held}
        pages.append({"page": page, "sent": sent[page], "in_redis": sum(per_window.values()), "per_window": per_window})
    reconciler = task_result(session, dag_id, run_id, RECONCILER_TASK)
    return {
        "run_id": run_id,
        "state": state,
        "windows": labels,
        "pages": pages,
        "sent_total": sum(sent.values()),
        "in_redis_total": sum(p["in_redis"] for p in pages),
        "reconciler": reconciler if isinstance(reconciler, dict) else None,
    }


def _check_run_id(run_id: str) -> None:
    if not run_id or len(run_id) > MAX_RUN_ID_LENGTH:
        raise BadParameter(f"a run id is 1 to {MAX_RUN_ID_LENGTH} characters, got {len(run_id)}")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
