"""Airflow's REST API on the local stack, as its admin: what the demo and the tests ask the running Airflow.

One HTTP request per question, where the CLI would start a whole Airflow (five seconds of CPU each time,
which polling loops on two cores cannot afford).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from devstack.airflow_parts import api_port, passwords
from devstack.errors import StackError


class AirflowApi:
    """A client of the api-server on ``CLICKSTREAM_AIRFLOW_PORT``, logged in as the local admin."""

    def __init__(
        self,
        port: int | None = None,
        username: str = "admin",
        password: str | None = None,
        airflow_home: Path | None = None,
    ) -> None:
        """Logged in as ``username``, with ``password`` or the one the stack in ``airflow_home`` generated."""
        self.base = f"http://127.0.0.1:{port or api_port()}"
        self.username = username
        self._password = password
        self._airflow_home = airflow_home
        self._token: str | None = None

    @property
    def password(self) -> str:
        if self._password is None:
            self._password = passwords(self._airflow_home)[self.username]
        return self._password

    def token(self) -> str:
        if self._token is None:
            body = self._request("POST", "/auth/token", {"username": self.username, "password": self.password})
            self._token = str(body["access_token"])
        return self._token

    def get(self, path: str, **query: object) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return self._request("GET", path, authenticated=True)

    def post(self, path: str, body: object) -> Any:
        return self._request("POST", path, body, authenticated=True)

    def patch(self, path: str, body: object) -> Any:
        return self._request("PATCH", path, body, authenticated=True)

    def _request(self, method: str, path: str, body: object = None, authenticated: bool = False) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authenticated:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return json.loads(payload) if payload else None
        except urllib.error.HTTPError as exc:
            raise AirflowApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None

    # What the demo and the tests ask.

    def dag_parsed(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details once the dag-processor has parsed it, else None."""
        try:
            return self.get(f"/api/v2/dags/{quote(dag_id)}/details")
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def wait_for_dag(self, dag_id: str, timeout: float, parsed_after: float = 0.0) -> dict[str, Any]:
        """Wait until ``dag_id`` is parsed (after epoch second ``parsed_after``, when given); its details."""
        deadline = time.monotonic() + timeout
        while True:
            details = self.dag_parsed(dag_id)
            parsed = details and details.get("last_parsed_time")
            if parsed and _epoch(str(parsed)) > parsed_after:
                return details  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise StackError(f"the dag-processor did not parse {dag_id} within {timeout:.0f}s: see its log")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.patch(f"/api/v2/dags/{quote(dag_id)}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, object] | None = None) -> str:
        """A new run of ``dag_id`` now; its run id."""
        run = self.post(f"/api/v2/dags/{quote(dag_id)}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")["state"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns", order_by="-start_date")["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Wait until the run ends; its final state, or the state it was still in at ``timeout``."""
        deadline = time.monotonic() + timeout
        state = self.run_state(dag_id, run_id)
        while state not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(2)
            state = self.run_state(dag_id, run_id)
        return state

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")
        return {str(ti["task_id"]): str(ti["state"]) for ti in instances["task_instances"]}

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """Mark a task instance ``state`` (e.g. ``failed``), as a user does in the UI."""
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
        self.patch(path, {"new_state": state})

    def task_timings(self, dag_id: str, run_id: str) -> dict[str, float | None]:
        """Seconds each task instance ran (None while it has not finished), in the order they started."""
        instances = self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")
        ordered = sorted(instances["task_instances"], key=lambda ti: ti.get("start_date") or "~")
        return {str(ti["task_id"]): ti.get("duration") for ti in ordered}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/xcomEntries"
        return self.get(f"{path}/{quote(key)}", deserialize="true")["value"]

    def set_variable(self, key: str, value: str) -> None:
        try:
            self.patch(f"/api/v2/variables/{quote(key)}", {"key": key, "value": value})
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
            self.post("/api/v2/variables", {"key": key, "value": value})


class AirflowApiError(StackError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
