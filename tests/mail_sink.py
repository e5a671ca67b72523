"""A real SMTP server writing a Maildir, for the tests that check what the pipeline emails."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import time
from collections.abc import Iterator
from pathlib import Path

from devstack.monitoring import MailSink, MonitoringPorts
from devstack.ports import free_port
from devstack.processes import running


def received(maildir: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted((maildir / "new").glob("*"))
    ]


@contextlib.contextmanager
def mail_sink(tmp_path: Path, airflow_env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """A real SMTP server writing a Maildir, and the Airflow environment whose smtp_default points at it."""
    ports = MonitoringPorts(smtp=free_port())
    mail = MailSink(tmp_path / "mail", ports)
    mail.prepare()
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": ports.smtp,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "airflow@clickstream.local"},
    }
    env = {
        **airflow_env,
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
        "AIRFLOW_VAR_CLICKSTREAM_SLA_EMAIL_TO": "on-call@clickstream.local",
    }
    with running("mail", mail.command(), mail.healthy, tmp_path / "mail.log"):
        yield env, mail.maildir


def wait_for_mail(maildir: Path, timeout: float = 30) -> list[email.message.EmailMessage]:
    deadline = time.monotonic() + timeout
    while not (messages := received(maildir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return messages
