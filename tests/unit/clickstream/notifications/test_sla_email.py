"""What the SLA-miss email says, from the context the scheduler gives a deadline callback."""

from __future__ import annotations

from datetime import UTC, datetime

from clickstream.notifications.sla_email import compose_email, run_url

CONTEXT = {
    "dag_run": {
        "dag_id": "clickstream_pipeline",
        "dag_run_id": "manual__2026-11-28T10:00:00+00:00",
        "state": "running",
        "queued_at": "2026-11-28T10:00:00Z",
        "start_date": "2026-11-28T10:00:02Z",
    },
    "deadline": {"id": "d1", "deadline_time": "2026-11-28T10:00:30Z"},
}


def test_the_subject_names_the_dag_and_the_run():
    subject, _ = compose_email(CONTEXT, "http://airflow:8080")
    assert subject == "[Airflow] SLA missed: clickstream_pipeline run manual__2026-11-28T10:00:00+00:00"


def test_the_body_has_the_deadline_and_a_link_to_the_run():
    now = datetime(2026, 11, 28, 10, 0, 31, tzinfo=UTC)
    _, body = compose_email(CONTEXT, "http://airflow:8080/", now=now)
    link = "http://airflow:8080/dags/clickstream_pipeline/runs/manual__2026-11-28T10%3A00%3A00%2B00%3A00"
    assert f'<a href="{link}">' in body
    assert "had not finished by its deadline, 2026-11-28T10:00:30Z" in body
    assert "<th align='left'>Noticed at</th><td>2026-11-28T10:00:31+00:00</td>" in body


def test_run_url_quotes_what_a_url_cannot_hold():
    assert run_url("http://h/", "d", "a b/c") == "http://h/dags/d/runs/a%20b%2Fc"


def test_markup_in_names_is_escaped():
    context = {"dag_run": {"dag_id": "<b>x</b>", "dag_run_id": "r"}, "deadline": {}}
    _, body = compose_email(context, "http://h")
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body
