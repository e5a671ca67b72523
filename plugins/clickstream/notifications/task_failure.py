"""The email a failed clickstream task sends: which task, which run, the error, and a link to its log.

A task of the pipeline that fails (a streaming job in a crash loop, a reconciler that found counts missing,
a topic that cannot be created) must reach a person, not only the task log. Both DAGs set
``on_failure_callback=task_failure_email()`` in their ``default_args``; the smtp provider's notifier renders
the message with the task's context and sends it through ``smtp_default``.
"""

from __future__ import annotations

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from clickstream.notifications.sla_email import DEFAULT_RECIPIENTS, DEFAULT_RECIPIENTS_VARIABLE

SUBJECT = "[Airflow] {{ ti.dag_id }}.{{ ti.task_id }} failed in run {{ ti.run_id }}"
# Rendered by Airflow's Jinja, which does not escape: every value from the run goes through |e, since an
# error message can quote a hostile record.
BODY = """\
<p>Task <b>{{ ti.task_id | e }}</b> of <b>{{ ti.dag_id | e }}</b> failed
(try {{ ti.try_number }}, run {{ ti.run_id | e }}).</p>
<pre>{{ (exception | string)[:4000] | e }}</pre>
<p><a href="{{ ti.log_url | e }}">The task's log</a></p>
"""


def task_failure_email(
    smtp_conn_id: str = "smtp_default",
    to: str = f"{{{{ var.value.get('{DEFAULT_RECIPIENTS_VARIABLE}', '{DEFAULT_RECIPIENTS}') }}}}",
) -> SmtpNotifier:
    """A notifier for ``on_failure_callback``.

    :param smtp_conn_id: the SMTP connection to send through; its extra's ``from_email`` is the sender.
    :param to: recipients, comma-separated (templated); default: the Variable ``clickstream_sla_email_to``,
        else ``data-team@clickstream.local``.
    """
    return SmtpNotifier(to=to, subject=SUBJECT, html_content=BODY, smtp_conn_id=smtp_conn_id)
