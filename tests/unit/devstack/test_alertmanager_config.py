"""Compose and `make up` render Alertmanager's config through one function: same environment, same file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack.monitoring import Alertmanager, MonitoringPorts
from devstack.paths import MONITORING

TEMPLATE = Path(MONITORING) / "alertmanager/alertmanager.yml"
ENVIRONMENTS = {
    "everything set": {
        "CLICKSTREAM_SMTP_SMARTHOST": "mail.example:2525",
        "CLICKSTREAM_ALERT_EMAIL_FROM": "alerts@example.org",
        "CLICKSTREAM_ALERT_EMAIL_TO": "oncall@example.org",
        "CLICKSTREAM_SLACK_WEBHOOK_URL": "https://hooks.example/T/B/X",
        "CLICKSTREAM_ALERT_GROUP_WAIT": "7s",
        "CLICKSTREAM_ALERT_GROUP_INTERVAL": "2m",
    },
    "only the mail server": {"CLICKSTREAM_SMTP_SMARTHOST": "mail.example:2525"},
}


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_compose_and_the_local_stack_render_the_same_file(name, tmp_path, monkeypatch):
    env = ENVIRONMENTS[name]
    for variable in ENVIRONMENTS["everything set"]:
        monkeypatch.delenv(variable, raising=False)
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CLICKSTREAM_ALERT") and k != "CLICKSTREAM_SMTP_SMARTHOST"
    }
    # compose's service: `python -m clickstream.monitoring alertmanager-config TEMPLATE OUTPUT`
    composed = tmp_path / "compose" / "alertmanager.yml"
    subprocess.run(
        [sys.executable, "-m", "clickstream.monitoring", "alertmanager-config", str(TEMPLATE), str(composed)],
        env={**base, **env},
        check=True,
    )
    # `make up`'s part
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    ports = MonitoringPorts(smtp=1025)
    part = Alertmanager(tmp_path / "local", ports)
    part.prepare()
    local = tmp_path / "local" / "alertmanager.yml"
    assert local.read_text() == composed.read_text()
    config = yaml.safe_load(local.read_text())
    assert config["global"]["smtp_smarthost"] == "mail.example:2525"
    assert config["route"]["group_interval"] == env.get("CLICKSTREAM_ALERT_GROUP_INTERVAL", "5m")
    assert oct(local.stat().st_mode & 0o777) == oct(composed.stat().st_mode & 0o777) == "0o600"
