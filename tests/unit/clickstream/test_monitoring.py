"""The Alertmanager config rendered from the shared template."""

from __future__ import annotations

from pathlib import Path

import yaml

from clickstream.monitoring import render_alertmanager_config

TEMPLATE = (Path(__file__).resolve().parents[3] / "include/monitoring/alertmanager/alertmanager.yml").read_text()


def test_email_only_without_a_slack_webhook():
    config = yaml.safe_load(render_alertmanager_config(TEMPLATE, smtp_smarthost="mail:1025", email_to="a@b.c"))
    assert config["global"]["smtp_smarthost"] == "mail:1025"
    assert config["global"]["smtp_require_tls"] is False
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["email"]["email_configs"][0]["to"] == "a@b.c"
    assert "slack_configs" not in receivers["slack"]
    assert [r["receiver"] for r in config["route"]["routes"]] == ["slack", "email"]


def test_slack_too_when_a_webhook_is_configured():
    config = yaml.safe_load(
        render_alertmanager_config(TEMPLATE, smtp_smarthost="m:25", slack_webhook_url="https://hooks.example/T/B/X")
    )
    slack = {r["name"]: r for r in config["receivers"]}["slack"]["slack_configs"][0]
    assert slack["api_url"] == "https://hooks.example/T/B/X" and slack["send_resolved"] is True
    assert config["route"]["routes"][0]["continue"] is True
