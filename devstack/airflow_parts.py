"""Airflow's components in the stack: their health, the secrets they share, and the metadata DB migration."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from devstack.errors import StackError
from devstack.paths import STATE, VENV_BIN
from devstack.ports import port_from_env

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def api_port() -> int:
    return port_from_env("CLICKSTREAM_AIRFLOW_PORT", 8080)


def health() -> dict[str, object] | None:
    """The api-server's health report, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port()}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def component_healthy(component: str, since: float) -> Callable[[], bool]:
    """Healthy means a heartbeat newer than ``since`` (epoch seconds): a stale one from before a restart is not."""
    key = component.replace("-", "_")

    def check() -> bool:
        report = health()
        if report is None:
            return False
        if component == "api-server":
            return True
        status = report.get(key, {})
        if not isinstance(status, dict) or status.get("status") != "healthy":
            return False
        heartbeat = status.get(f"latest_{key}_heartbeat")
        return isinstance(heartbeat, str) and datetime.fromisoformat(heartbeat).timestamp() >= since

    return check


def load_secrets() -> None:
    """Keys every Airflow component must share; generated once, kept in the state folder, exported here."""
    secrets_file = STATE / "secrets.json"
    if not secrets_file.exists():
        from cryptography.fernet import Fernet

        tmp = secrets_file.with_suffix(".tmp")  # written whole or not at all: an interrupted `up` leaves no half file
        tmp.write_text(
            json.dumps(
                {
                    "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                    "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                }
            )
        )
        tmp.chmod(0o600)
        tmp.replace(secrets_file)
    for key, value in json.loads(secrets_file.read_text()).items():
        os.environ.setdefault(key, value)


def migrate() -> None:
    """Write the admin password file and run `airflow db migrate` (a no-op on an up-to-date DB, so always run)."""
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    (airflow_home / "plugins").mkdir(parents=True, exist_ok=True)
    passwords = airflow_home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({"admin": os.environ.get("CLICKSTREAM_ADMIN_PASSWORD", "admin")}))
    result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"`airflow db migrate` failed:\n{result.stderr[-3000:]}")
