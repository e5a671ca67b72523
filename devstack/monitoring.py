"""The monitoring half of the local stack: how each part is configured, started and health-checked.

statsd_exporter (Airflow's StatsD -> Prometheus), redis_exporter, Prometheus, Alertmanager, a mail
catcher (a real SMTP server writing a Maildir), and the Prometheus JMX agent inside the Kafka broker.
Each serves loopback only. The configuration files are the ones under include/monitoring/, used in
place: Prometheus reads its config and rules through links in its state folder, beside the target
list written here for this stack's ports (docker-compose mounts the same files beside its own list).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devstack.paths import MONITORING
from devstack.redis_server import RedisServer
from devstack.secret_files import write_private


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def binary(name: str, *candidates: Path) -> str:
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make setup`")
    return found


@dataclass
class MonitoringPorts:
    prometheus: int = 9090
    alertmanager: int = 9093
    statsd_exporter: int = 9102  # its web page and /metrics
    statsd: int = 9125  # UDP, where Airflow and the Spark job send StatsD
    redis_exporter: int = 9121
    kafka_metrics: int = 9308  # the JMX agent in the broker
    smtp: int = 1025
    spark_metrics: int = 4040  # a streaming driver's UI, while one runs

    @classmethod
    def from_env(cls) -> MonitoringPorts:
        def port(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(
            prometheus=port("CLICKSTREAM_PROMETHEUS_PORT", 9090),
            alertmanager=port("CLICKSTREAM_ALERTMANAGER_PORT", 9093),
            statsd_exporter=port("CLICKSTREAM_STATSD_EXPORTER_PORT", 9102),
            statsd=port("CLICKSTREAM_STATSD_PORT", 9125),
            redis_exporter=port("CLICKSTREAM_REDIS_EXPORTER_PORT", 9121),
            kafka_metrics=port("CLICKSTREAM_KAFKA_METRICS_PORT", 9308),
            smtp=port("CLICKSTREAM_SMTP_PORT", 1025),
            spark_metrics=port("CLICKSTREAM_SPARK_METRICS_PORT", 4040),
        )

    def env_vars(self) -> dict[str, tuple[int, str]]:
        """Each TCP port with the variable that moves it (for the port-taken check)."""
        return {
            "prometheus": (self.prometheus, "CLICKSTREAM_PROMETHEUS_PORT"),
            "alertmanager": (self.alertmanager, "CLICKSTREAM_ALERTMANAGER_PORT"),
            "statsd-exporter": (self.statsd_exporter, "CLICKSTREAM_STATSD_EXPORTER_PORT"),
            "redis-exporter": (self.redis_exporter, "CLICKSTREAM_REDIS_EXPORTER_PORT"),
            "kafka metrics": (self.kafka_metrics, "CLICKSTREAM_KAFKA_METRICS_PORT"),
            "mail": (self.smtp, "CLICKSTREAM_SMTP_PORT"),
        }


def kafka_jmx_agent(jars_dir: Path, port: int) -> str:
    """The JVM option that starts the Prometheus JMX agent in the broker (its jar comes with the broker's)."""
    agents = sorted(jars_dir.glob("jmx_prometheus_javaagent-*.jar"))
    if not agents:
        raise FileNotFoundError(f"no jmx_prometheus_javaagent jar in {jars_dir}: run `make setup`")
    return f"-javaagent:{agents[-1]}=127.0.0.1:{port}:{MONITORING / 'kafka/jmx-exporter.yml'}"


@dataclass
class StatsdExporter:
    ports: MonitoringPorts
    deps: Path

    def command(self) -> list[str]:
        exe = binary("statsd_exporter", self.deps / "bin" / "statsd_exporter")
        return [
            exe,
            f"--statsd.mapping-config={MONITORING / 'statsd/mapping.yml'}",
            f"--statsd.listen-udp=127.0.0.1:{self.ports.statsd}",
            "--statsd.listen-tcp=",
            f"--web.listen-address=127.0.0.1:{self.ports.statsd_exporter}",
        ]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.ports.statsd_exporter}/metrics")


@dataclass
class RedisExporter:
    """redis_exporter as Redis's ``monitor`` user, its password read from a file of mode 0600."""

    ports: MonitoringPorts
    redis: RedisServer

    @property
    def address(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}"

    @property
    def password_file(self) -> Path:
        return self.redis.workdir / "exporter-password.json"

    def prepare(self) -> None:
        write_private(self.password_file, {self.address: self.redis.passwords()["monitor"]})

    def command(self) -> list[str]:
        return [
            binary("prometheus-redis-exporter"),
            "-redis.addr",
            self.address,
            "-redis.user",
            "monitor",
            "-redis.password-file",
            str(self.password_file),
            "-web.listen-address",
            f"127.0.0.1:{self.ports.redis_exporter}",
        ]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.ports.redis_exporter}/metrics")


@dataclass
class Prometheus:
    """Prometheus on the shared config; ``rule_for`` overrides every rule's ``for:`` (tests, demos)."""

    workdir: Path
    ports: MonitoringPorts
    scrape_interval: str | None = None
    rule_for: str | None = None
    kafka_metrics_ports: list[int] | None = None  # each cluster node's JMX agent; the one broker's by default

    def targets(self) -> dict[str, list[str]]:
        p = self.ports
        return {
            "prometheus": [f"127.0.0.1:{p.prometheus}"],
            "alertmanager": [f"127.0.0.1:{p.alertmanager}"],
            "statsd-exporter": [f"127.0.0.1:{p.statsd_exporter}"],
            "redis-exporter": [f"127.0.0.1:{p.redis_exporter}"],
            "kafka": [f"127.0.0.1:{port}" for port in (self.kafka_metrics_ports or [p.kafka_metrics])],
            "spark": [f"127.0.0.1:{p.spark_metrics}"],
        }

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        targets = self.workdir / "targets"
        targets.mkdir(exist_ok=True)
        for name, hosts in self.targets().items():
            (targets / f"{name}.json").write_text(json.dumps([{"targets": hosts, "labels": {}}], indent=2))
        config, rules = self.workdir / "prometheus.yml", self.workdir / "rules"
        for link in (config, rules):
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
        if self.scrape_interval:
            text = (MONITORING / "prometheus/prometheus.yml").read_text()
            text = re.sub(r"(scrape_interval|evaluation_interval): \S+", rf"\1: {self.scrape_interval}", text)
            config.write_text(text)
        else:
            config.symlink_to(MONITORING / "prometheus/prometheus.yml")
        if self.rule_for:
            rules.mkdir()
            for source in (MONITORING / "prometheus/rules").glob("*.yml"):
                text = re.sub(r"(\n\s+for: )\S+", rf"\g<1>{self.rule_for}", source.read_text())
                (rules / source.name).write_text(text)
        else:
            rules.symlink_to(MONITORING / "prometheus/rules")

    def command(self) -> list[str]:
        return [
            binary("prometheus"),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d",
        ]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.ports.prometheus}/-/ready")


@dataclass
class Alertmanager:
    workdir: Path
    ports: MonitoringPorts
    email_to: str = "data-team@clickstream.local"
    group_wait: str = "30s"

    def prepare(self) -> None:
        """Rendered as compose renders it (:func:`clickstream.monitoring.alertmanager_config_from_env`), with
        this stack's mail sink, recipients and group wait as defaults that the environment overrides."""
        from clickstream.monitoring import write_alertmanager_config

        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        defaults = {
            "CLICKSTREAM_SMTP_SMARTHOST": f"127.0.0.1:{self.ports.smtp}",
            "CLICKSTREAM_ALERT_EMAIL_TO": self.email_to,
            "CLICKSTREAM_ALERT_GROUP_WAIT": self.group_wait,
        }
        write_alertmanager_config(
            MONITORING / "alertmanager/alertmanager.yml", self.workdir / "alertmanager.yml", {**defaults, **os.environ}
        )

    def command(self) -> list[str]:
        return [
            binary("prometheus-alertmanager"),
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
            "--cluster.listen-address=",
        ]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.ports.alertmanager}/-/ready")


@dataclass
class MailSink:
    """aiosmtpd's Mailbox handler: every message lands in ``maildir/new/``, one file each."""

    maildir: Path
    ports: MonitoringPorts
    python: str = sys.executable

    def prepare(self) -> None:
        for sub in ("tmp", "new", "cur"):  # a Maildir; the handler does not create it inside an existing folder
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{self.ports.smtp}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(self.maildir),
        ]

    def healthy(self) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", self.ports.smtp, timeout=2) as smtp:
                return smtp.noop()[0] == 250
        except (TimeoutError, OSError, smtplib.SMTPException):
            return False
