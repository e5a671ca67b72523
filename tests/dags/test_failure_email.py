"""A failed task of either DAG emails its error through smtp_default, to a real SMTP sink."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow_cli import airflow_dags_test
from mail_sink import mail_sink, wait_for_mail

pytestmark = pytest.mark.dags

REPO = Path(__file__).resolve().parents[2]


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
