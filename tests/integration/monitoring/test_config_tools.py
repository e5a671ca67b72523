"""The monitoring configuration, checked by the tools that run it: promtool, amtool, statsd_exporter."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clickstream.monitoring import render_alertmanager_config
from devstack.monitoring import MonitoringPorts, Prometheus, binary
from devstack.paths import DEPS, MONITORING

pytestmark = pytest.mark.integration

MONITORING = MONITORING
DASHBOARD = MONITORING / "grafana/dashboards/clickstream.json"
RULES = MONITORING / "prometheus/rules/clickstream.yml"


def run(*command: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_promtool_checks_the_prometheus_config_as_the_local_stack_lays_it_out(tmp_path):
    prometheus = Prometheus(tmp_path / "prometheus", MonitoringPorts())
    prometheus.prepare()
    output = run(binary("promtool"), "check", "config", str(tmp_path / "prometheus/prometheus.yml"))
    assert "SUCCESS" in output and "rules/clickstream.yml" in output
    assert json.loads((tmp_path / "prometheus/targets/kafka.json").read_text()) == [
        {"targets": ["127.0.0.1:9308"], "labels": {}}
    ]


def test_promtool_checks_the_rules():
    output = run(binary("promtool"), "check", "rules", str(MONITORING / "prometheus/rules/clickstream.yml"))
    assert "SUCCESS: 12 rules found" in output


def test_promtool_unit_tests_every_alert_rule():
    rules_test = "prometheus/tests/clickstream_rules_test.yml"
    output = run(binary("promtool"), "test", "rules", rules_test, cwd=MONITORING)
    assert "SUCCESS" in output
    tested = (MONITORING / rules_test).read_text()
    rules = RULES.read_text()
    alerts = [line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")]
    assert len(alerts) == 10
    for alert in alerts:
        assert f"alertname: {alert}\n" in tested, f"{alert} has no unit test"


@pytest.mark.parametrize("slack", [None, "https://hooks.example/services/T/B/X"])
def test_amtool_accepts_the_rendered_alertmanager_config(tmp_path, slack):
    config = tmp_path / "alertmanager.yml"
    template = (MONITORING / "alertmanager/alertmanager.yml").read_text()
    config.write_text(render_alertmanager_config(template, smtp_smarthost="127.0.0.1:1025", slack_webhook_url=slack))
    output = run(binary("amtool"), "check-config", str(config))
    assert "SUCCESS" in output and "2 receivers" in output


def test_statsd_exporter_accepts_the_mapping():
    exe = binary("statsd_exporter", DEPS / "bin/statsd_exporter")
    run(exe, f"--statsd.mapping-config={MONITORING / 'statsd/mapping.yml'}", "--check-config")


def test_every_dashboard_panel_queries_prometheus_and_refreshes_every_15s():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["refresh"] == "15s"
    titles = [p["title"] for p in dashboard["panels"]]
    for needed in ("Service Availability", "Click Counts", "DAG Success Rate", "Streaming rate", "Dead letters"):
        assert any(t.startswith(needed) for t in titles), needed
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus" and panel["targets"], panel["title"]
