"""A failed task of either DAG emails its error through smtp_default, to a real SMTP sink."""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import time
from collections.abc import Iterator
from pathlib import Path

import local_stack
import monitoring_parts
import pytest
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow_cli import airflow_dags_test

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]


def received(maildir: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted((maildir / "new").glob("*"))
    ]


@contextlib.contextmanager
def mail_sink(tmp_path: Path, airflow_env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """A real SMTP server writing a Maildir, and the Airflow environment whose smtp_default points at it."""
    ports = monitoring_parts.MonitoringPorts(smtp=local_stack.free_port())
    mail = monitoring_parts.MailSink(tmp_path / "mail", ports)
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
    with local_stack.running("mail", mail.command(), mail.healthy, tmp_path / "mail.log"):
        yield env, mail.maildir


def wait_for_mail(maildir: Path, timeout: float = 30) -> list[email.message.EmailMessage]:
    deadline = time.monotonic() + timeout
    while not (messages := received(maildir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return messages


def test_a_failed_pipeline_task_emails_its_error(airflow_env, tmp_path):
    # A topic name Kafka refuses: create_kafka_topic fails at once, with a message that says what to fix.
    conf = {"topic": "no spaces <allowed>", "dead_letter_topic": "dlq"}
    with mail_sink(tmp_path, airflow_env) as (env, maildir):
        code, output, _ = airflow_dags_test(env, "clickstream_pipeline", conf, timeout=300)
        assert code != 0, output[-4000:]
        messages = wait_for_mail(maildir)
    assert len(messages) == 1, output[-4000:]
    message = messages[0]
    assert message["Subject"].startswith("[Airflow] clickstream_pipeline.create_kafka_topic failed in run ")
    assert message["To"] == "on-call@clickstream.local"
    assert message["From"] == "airflow@clickstream.local"
    body = message.get_body(preferencelist=("html",)).get_content()
    assert "no spaces &lt;allowed&gt;" in body  # the error names the topic, escaped
    assert "<allowed>" not in body


def test_every_task_of_both_dags_has_the_failure_email():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    for dag_id in ("clickstream_pipeline", "clickstream_streaming"):
        for task in bag.get_dag(dag_id).tasks:
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            notifiers = [c for c in callbacks if isinstance(c, SmtpNotifier)]
            assert len(notifiers) == 1, (dag_id, task.task_id)
            assert notifiers[0].smtp_conn_id == "smtp_default"
