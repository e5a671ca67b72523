"""The burst operator's counts reach a StatsD server through Airflow's own metrics client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags


def test_burst_counts_are_emitted_as_airflow_statsd_metrics(airflow_env, topic_factory):
    topic = topic_factory("metrics", partitions=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        statsd.settimeout(0.5)
        env = {
            **airflow_env,
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.getsockname()[1]),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            # A folder of its own, so that `airflow dags test` parses only this DAG.
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).with_name("dag_files")),
        }
        conf = json.dumps({"topic": topic, "events": 3000})
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", "clickstream_burst_metrics", "--conf", conf],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        lines: list[str] = []
        while True:
            try:
                lines += statsd.recv(65536).decode().splitlines()
            except TimeoutError:
                break
    sent = [line for line in lines if line.startswith("airflow.clickstream.producer.events_sent:")]
    assert sent == ["airflow.clickstream.producer.events_sent:3000|c"], lines[:50]
    assert "airflow.clickstream.producer.events_failed:0|c" in lines
    malformed = [line for line in lines if line.startswith("airflow.clickstream.producer.events_malformed:")]
    assert malformed and int(malformed[0].split(":")[1].split("|")[0]) > 0
    assert any(line.startswith("airflow.clickstream.producer.events_per_s:") and line.endswith("|g") for line in lines)
