"""The whole local stack with its monitoring: the pipeline on the real scheduler and triggerer, SLA-miss
emails from Deadline Alerts, and every Grafana panel's query answered by the real Prometheus."""

from __future__ import annotations

import email
import email.policy
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from stack_helpers import REPO, LocalStack, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local_stack")]

DASHBOARD = REPO / "include/monitoring/grafana/dashboards/clickstream.json"
SLA_VARIABLE = "clickstream_pipeline_sla_seconds"
DEMO_EVENTS = 5000  # clickstream_pipeline's default burst, which `make demo` sends


def set_sla(stack: LocalStack, seconds: int, timeout: float = 150) -> None:
    """Set the SLA Variable and wait until the DAG's newest version has its Deadline Alert at ``seconds``.

    The dag-processor's regular parse picks the Variable up (within its 30 s interval). Neither
    `airflow dags reserialize` (a second writer of the serialized DAG runs into apache/airflow#68732: later
    runs get no deadline at all) nor a parse request (`PUT /parseDagFile`, seen parsing with the old value)
    is a shortcut in Airflow 3.3.
    """
    stack.api.set_variable(SLA_VARIABLE, str(seconds))
    deadline = time.monotonic() + timeout
    while True:
        alerts = stack.api.get("/ui/dags/clickstream_pipeline/deadlineAlerts")["deadline_alerts"]
        if [alert["interval"] for alert in alerts] == [seconds]:
            return
        assert time.monotonic() < deadline, f"clickstream_pipeline's deadline is still {alerts} after {timeout}s"
        time.sleep(2)


def sla_emails(maildir: Path) -> list[email.message.EmailMessage]:
    messages = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted((maildir / "new").glob("*"))
    ]
    return [m for m in messages if str(m["Subject"]).startswith("[Airflow] SLA missed")]  # type: ignore[misc]


def prometheus_query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def producer_totals(port: int) -> dict[str, float]:
    """The producer's sent and delivered totals as Prometheus has them (0 before the first burst)."""
    return {
        name: sum(float(s["value"][1]) for s in prometheus_query(port, f"{name}_total"))
        for name in ("clickstream_producer_events_sent", "clickstream_producer_events_delivered")
    }


def test_pipeline_sla_emails_and_dashboard_queries_on_the_local_stack(local_stack: LocalStack):
    ports, env = local_stack.ports, local_stack.env
    maildir = local_stack.state / "mail"
    before = producer_totals(ports["prometheus"])
    emailed_before = len(sla_emails(maildir))

    # A slow run: the SLA is 20 s, the pipeline takes longer (the DAG reads the Variable when parsed).
    set_sla(local_stack, 20)
    slow = run_demo(env, "clickstream_pipeline")
    slow_run = slow.split("triggered clickstream_pipeline run ", 1)[1].split()[0]
    assert "clickstream_pipeline finished: success" in slow
    deadline = time.monotonic() + 60
    while len(sla_emails(maildir)) == emailed_before and time.monotonic() < deadline:
        time.sleep(1)

    # A fast run: the same pipeline with a 15-minute SLA.
    set_sla(local_stack, 900)
    fast = run_demo(env, "clickstream_pipeline")
    fast_run = fast.split("triggered clickstream_pipeline run ", 1)[1].split()[0]
    time.sleep(10)  # the scheduler checks deadlines every loop; give a wrong email time to arrive

    emails = sla_emails(maildir)[emailed_before:]
    for message in emails:
        body = message.get_body(preferencelist=("html", "plain")).get_content()
        print("\n".join(f"{k}: {v}" for k, v in message.items() if k in ("From", "To", "Subject", "Date")))
        print(body[:600])
    assert len(emails) == 1, [m["Subject"] for m in emails]
    assert emails[0]["Subject"] == f"[Airflow] SLA missed: clickstream_pipeline run {slow_run}"
    assert fast_run not in str(emails[0]["Subject"])
    body = emails[0].get_body(preferencelist=("html", "plain")).get_content()
    assert f"http://127.0.0.1:{ports['airflow']}/dags/clickstream_pipeline/runs/" in body

    # Every scrape target is up, and Prometheus has the producer's figures for both runs: every event
    # sent was delivered.
    expected = {name: total + 2 * DEMO_EVENTS for name, total in before.items()}
    figures: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        figures = producer_totals(ports["prometheus"])
        if figures == expected:
            break
        time.sleep(1)
    assert figures == expected, (figures, before)
    # The Spark driver serves metrics only while a streaming job runs (the runs' jobs have ended): it must
    # have been up while they ran. Every other target must be up now.
    query = 'up{job!="spark"} or max_over_time(up{job="spark"}[15m])'
    targets = {s["metric"]["job"] + "/" + s["metric"]["instance"]: s["value"][1]
               for s in prometheus_query(ports["prometheus"], query)}  # fmt: skip
    print("scrape targets:", targets)
    jobs = {name.split("/")[0] for name in targets}
    assert jobs == {"prometheus", "statsd-exporter", "redis", "kafka", "spark", "alertmanager"}, targets
    assert all(value == "1" for value in targets.values()), targets

    # Every panel's query returns data from the real Prometheus.
    empty = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            result = prometheus_query(ports["prometheus"], target["expr"])
            print(f"{panel['title']:<62} {len(result):>3} series  {target['expr']}")
            if not result:
                empty.append(f"{panel['title']}: {target['expr']}")
    assert not empty, empty
    # The documented success-rate query answers.
    seed = "rate(airflow_dag_run_total[1h]) - rate(airflow_dag_run_failed_total[1h])"
    assert prometheus_query(ports["prometheus"], seed)
