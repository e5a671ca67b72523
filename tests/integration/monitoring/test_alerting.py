"""Alerting for real: Redis stops, Prometheus notices through redis_exporter, Alertmanager emails a real SMTP sink."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from devstack.monitoring import Alertmanager, MailSink, MonitoringPorts, Prometheus, RedisExporter
from devstack.ports import free_port
from devstack.processes import running, wait_until
from devstack.redis_server import RedisServer

pytestmark = pytest.mark.integration


def read_maildir(maildir: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted((maildir / "new").glob("*"))
    ]


def redis_up_in_prometheus(port: int) -> bool:
    """Prometheus has scraped redis_up = 1 and evaluated its rules on it: RedisDown could have fired by now."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": "redis_up == 1"})
    with urllib.request.urlopen(url, timeout=10) as response:
        return bool(json.load(response)["data"]["result"])


def test_stopping_redis_sends_the_redis_down_email(tmp_path):
    ports = MonitoringPorts(**{name: free_port() for name in MonitoringPorts.__dataclass_fields__})
    logs = tmp_path / "logs"
    redis_server = RedisServer(tmp_path / "redis", free_port(), persistent=False)
    redis_server.prepare()
    exporter = RedisExporter(ports, redis_server)
    exporter.prepare()
    # The test's own timings: scrape and evaluate every second, alerts fire after 2s, Alertmanager waits 1s.
    prometheus = Prometheus(tmp_path / "prometheus", ports, scrape_interval="1s", rule_for="2s")
    alertmanager = Alertmanager(tmp_path / "alertmanager", ports, group_wait="1s")
    mail = MailSink(tmp_path / "mail", ports)
    for part in (prometheus, alertmanager, mail):
        part.prepare()

    with contextlib.ExitStack() as stack:
        # Redis starts first: an exporter retrying a port nobody listens on yet can, now and then, be handed
        # that very port as its own local port (a TCP self-connection), and then Redis cannot bind it.
        redis_running = contextlib.ExitStack()
        stack.callback(redis_running.close)
        redis_running.enter_context(running("redis", redis_server.command(), redis_server.healthy, logs / "redis.log"))
        for name, part in (("mail", mail), ("alertmanager", alertmanager), ("redis-exporter", exporter)):
            stack.enter_context(running(name, part.command(), part.healthy, logs / f"{name}.log"))
        stack.enter_context(running("prometheus", prometheus.command(), prometheus.healthy, logs / "prometheus.log"))
        # Redis is up and seen up: no RedisDown yet.
        assert wait_until(lambda: exporter.healthy(), 30)
        assert wait_until(lambda: redis_up_in_prometheus(ports.prometheus), 30)
        assert not [m for m in read_maildir(mail.maildir) if "RedisDown" in str(m["Subject"])]
        redis_running.close()
        stopped = time.monotonic()
        deadline = stopped + 90
        received = []
        while time.monotonic() < deadline and not received:
            received = [m for m in read_maildir(mail.maildir) if "RedisDown" in str(m["Subject"])]
            time.sleep(0.5)
        waited = time.monotonic() - stopped
        assert received, (
            f"no RedisDown email within 90s; subjects: {[m['Subject'] for m in read_maildir(mail.maildir)]}"
        )

    message = received[0]
    print(f"RedisDown email {waited:.1f}s after Redis stopped")
    print("\n".join(f"{k}: {v}" for k, v in message.items() if k in ("From", "To", "Subject", "Date")))
    assert message["Subject"].startswith("[clickstream] FIRING RedisDown: Redis 127.0.0.1:")
    assert message["To"] == "data-team@clickstream.local"
    body = message.get_body(preferencelist=("plain", "html")).get_content()
    assert "The feature store does not answer" in body
