"""SLA-miss email for Airflow 3 Deadline Alerts: the DAG, the run, how late, and a link to it.

Used as ``AsyncCallback(email_deadline_missed, kwargs={...})`` in a DAG's ``DeadlineAlert``: the scheduler
notices the missed deadline and the triggerer awaits this coroutine, so it must not block; the email
goes out through the smtp provider's async client and ``smtp_default``.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airflow.providers.smtp.hooks.smtp import SmtpHook

DEFAULT_RECIPIENTS_VARIABLE = "clickstream_sla_email_to"
DEFAULT_RECIPIENTS = "data-team@clickstream.local"


def run_url(base_url: str, dag_id: str, run_id: str) -> str:
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def compose_email(context: dict[str, Any], base_url: str, now: datetime | None = None) -> tuple[str, str]:
    """Subject and HTML body from the context the scheduler gives a deadline callback. Pure, for unit tests."""
    run = context.get("dag_run", {})
    deadline = context.get("deadline", {})
    dag_id, run_id = str(run.get("dag_id", "?")), str(run.get("dag_run_id") or run.get("run_id", "?"))
    deadline_time = str(deadline.get("deadline_time", "?"))
    now = now or datetime.now(UTC)
    link = run_url(base_url, dag_id, run_id)
    subject = f"[Airflow] SLA missed: {dag_id} run {run_id}"
    rows = [
        ("DAG", dag_id),
        ("Run", run_id),
        ("State", str(run.get("state", "?"))),
        ("Queued at", str(run.get("queued_at", "?"))),
        ("Started at", str(run.get("start_date", "?"))),
        ("Deadline", deadline_time),
        ("Noticed at", now.isoformat(timespec="seconds")),
    ]
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    body = (
        f"<p>{html.escape(dag_id)} run {html.escape(run_id)} had not finished "
        f"by its deadline, {html.escape(deadline_time)}.</p>"
        f"<table>{table}</table>"
        f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>'
    )
    return subject, body


async def email_deadline_missed(
    context: dict[str, Any],
    to: str | list[str] | None = None,
    smtp_conn_id: str = "smtp_default",
    base_url: str | None = None,
) -> str:
    """Send the SLA-miss email; returns the subject (kept by Airflow as the callback's result).

    Recipients: ``to``, else the Variable ``clickstream_sla_email_to`` (comma-separated), else a default.
    """
    from asgiref.sync import sync_to_async

    if not to:
        from airflow.sdk import Variable

        to = await sync_to_async(Variable.get)(DEFAULT_RECIPIENTS_VARIABLE, DEFAULT_RECIPIENTS)
    if base_url is None:
        from airflow.sdk import conf

        base_url = conf.get("api", "base_url", fallback="http://localhost:8080")
    subject, body = compose_email(context, base_url)
    async with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        await hook.asend_email_smtp(to=to, subject=subject, html_content=body)
    return subject
