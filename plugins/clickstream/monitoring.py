"""Monitoring configuration shared by the local stack and docker-compose.

Alertmanager reads no environment variables, so its one config file is a template
(``include/monitoring/alertmanager/alertmanager.yml``) that this module fills in::

    python -m clickstream.monitoring alertmanager-config TEMPLATE OUTPUT

with the settings :func:`alertmanager_config_from_env` reads from the environment. The local stack renders
it through the same function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from string import Template

DEFAULT_SMTP_SMARTHOST = "127.0.0.1:1025"


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
    write_alertmanager_config(args.template, args.output, os.environ)
    return 0


def alertmanager_config_from_env(template: str, env: Mapping[str, str]) -> str:
    """The Alertmanager config for an environment: the one reading of its variables, for compose and `make up`.

    ``CLICKSTREAM_SMTP_SMARTHOST``, ``CLICKSTREAM_ALERT_EMAIL_FROM``, ``CLICKSTREAM_ALERT_EMAIL_TO``,
    ``CLICKSTREAM_SLACK_WEBHOOK_URL``, ``CLICKSTREAM_ALERT_GROUP_WAIT``, ``CLICKSTREAM_ALERT_GROUP_INTERVAL``;
    each unset one takes :func:`render_alertmanager_config`'s default.
    """
    names = {
        "smtp_smarthost": "CLICKSTREAM_SMTP_SMARTHOST",
        "email_from": "CLICKSTREAM_ALERT_EMAIL_FROM",
        "email_to": "CLICKSTREAM_ALERT_EMAIL_TO",
        "slack_webhook_url": "CLICKSTREAM_SLACK_WEBHOOK_URL",
        "group_wait": "CLICKSTREAM_ALERT_GROUP_WAIT",
        "group_interval": "CLICKSTREAM_ALERT_GROUP_INTERVAL",
    }
    settings = {arg: env[name] for arg, name in names.items() if env.get(name)}
    settings.setdefault("smtp_smarthost", DEFAULT_SMTP_SMARTHOST)
    return render_alertmanager_config(template, **settings)


def write_alertmanager_config(template: Path, output: Path, env: Mapping[str, str]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(alertmanager_config_from_env(template.read_text(), env))
    output.chmod(0o600)  # it may hold a Slack webhook URL


if __name__ == "__main__":
    sys.exit(main())
