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
from devstack.secret_files import generated_passwords, write_private

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# No log servers: every component shares this machine's log folder, which the api-server reads directly,
# and Airflow's log servers listen on every interface (a port open to the network for nothing).
COMPONENT_OPTIONS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}


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

        write_private(
            secrets_file,
            {
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            },
        )
    for key, value in json.loads(secrets_file.read_text()).items():
        os.environ.setdefault(key, value)


# The UI's users and their SimpleAuthManager roles (airflow.cfg's simple_auth_manager_users says the same).
USERS = {"admin": "admin", "viewer": "viewer"}


def passwords_file(airflow_home: Path | None = None) -> Path:
    """Where the UI users' passwords are kept (airflow.cfg's simple_auth_manager_passwords_file)."""
    return (airflow_home or Path(os.environ["AIRFLOW_HOME"])) / "simple_auth_manager_passwords.json"


def passwords(airflow_home: Path | None = None) -> dict[str, str]:
    """Each UI user's password, generated at the first `up` and kept, readable by its owner only.

    Written before the api-server starts: given no password, Airflow would make one up and print it to its log.
    """
    return generated_passwords(passwords_file(airflow_home), USERS)


def login_hint() -> str:
    """The UI's users, their passwords and where those are kept: what `make up` and `make demo` print."""
    known = passwords()
    users = ", ".join(f"{user} ({USERS[user]}) password {known[user]}" for user in USERS)
    return f"[airflow] log in as {users}; kept in {passwords_file()} (readable by its owner only)"


def migrate() -> None:
    """Make sure the UI users have passwords and run `airflow db migrate` (a no-op on an up-to-date DB)."""
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    (airflow_home / "plugins").mkdir(parents=True, exist_ok=True)
    passwords(airflow_home)
    result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"`airflow db migrate` failed:\n{result.stderr[-3000:]}")
