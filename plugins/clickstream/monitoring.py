"""Monitoring configuration shared by the local stack and docker-compose.

Alertmanager reads no environment variables, so its one config file is a template
(``include/monitoring/alertmanager/alertmanager.yml``) that this module fills in::

    python -m clickstream.monitoring alertmanager-config TEMPLATE OUTPUT

with ``CLICKSTREAM_SMTP_SMARTHOST``, ``CLICKSTREAM_ALERT_EMAIL_FROM``, ``CLICKSTREAM_ALERT_EMAIL_TO`` and,
when set, ``CLICKSTREAM_SLACK_WEBHOOK_URL`` from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from string import Template


def render_alertmanager_config(
    template: str,
    *,
    smtp_smarthost: str,
    email_from: str = "alertmanager@clickstream.local",
    email_to: str = "data-team@clickstream.local",
    smtp_require_tls: bool = False,
    slack_webhook_url: str | None = None,
    slack_channel: str = "#clickstream-alerts",
    group_wait: str = "30s",
    group_interval: str = "5m",
) -> str:
    """The Alertmanager config: email always, Slack too when a webhook URL is given."""
    slack = ""
    if slack_webhook_url:
        slack = (
            "    slack_configs:\n"
            f"      - api_url: {json.dumps(slack_webhook_url)}\n"
            f"        channel: {json.dumps(slack_channel)}\n"
            "        send_resolved: true\n"
            "        title: '{{ .Status | toUpper }} {{ .CommonLabels.alertname }}'\n"
            "        text: '{{ .CommonAnnotations.summary }}'\n"
        )
    return Template(template).substitute(
        smtp_smarthost=smtp_smarthost,
        smtp_from=email_from,
        email_to=email_to,
        smtp_require_tls=str(smtp_require_tls).lower(),
        slack_configs=slack,
        group_wait=group_wait,
        group_interval=group_interval,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    am = sub.add_parser("alertmanager-config", help="render the Alertmanager template from the environment")
    am.add_argument("template", type=Path)
    am.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    env = os.environ
    text = render_alertmanager_config(
        args.template.read_text(),
        smtp_smarthost=env.get("CLICKSTREAM_SMTP_SMARTHOST", "127.0.0.1:1025"),
        email_from=env.get("CLICKSTREAM_ALERT_EMAIL_FROM", "alertmanager@clickstream.local"),
        email_to=env.get("CLICKSTREAM_ALERT_EMAIL_TO", "data-team@clickstream.local"),
        slack_webhook_url=env.get("CLICKSTREAM_SLACK_WEBHOOK_URL") or None,
        group_wait=env.get("CLICKSTREAM_ALERT_GROUP_WAIT", "30s"),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
