"""Provider metadata, read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from clickstream import __version__


def get_provider_info() -> dict[str, Any]:
    """Describe the package the way ``airflow providers list`` expects."""
    return {
        "package-name": "clickstream-airflow",
        "name": "Clickstream",
        "description": "Clickstream analytics pipeline: Kafka topics and producer bursts, Spark Structured "
        "Streaming windowed counts, a Redis feature store and SLA checks.",
        "state": "ready",
        "source-date-epoch": 1764288000,
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Clickstream",
                "tags": ["software"],
            }
        ],
        # Connections reuse the official providers' types: kafka_default (kafka),
        # redis_default (redis), spark_default (spark), smtp_default (smtp).
        "connection-types": [],
        "hooks": [
            {
                "integration-name": "Clickstream",
                "python-modules": [
                    "clickstream.hooks.kafka_topics",
                    "clickstream.hooks.producer",
                    "clickstream.hooks.redis",
                    "clickstream.hooks.spark_submit",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Clickstream",
                "python-modules": [
                    "clickstream.operators.kafka_topics",
                    "clickstream.operators.producer_burst",
                    "clickstream.operators.streaming",
                    "clickstream.operators.reconcile",
                ],
            }
        ],
        "sensors": [{"integration-name": "Clickstream", "python-modules": ["clickstream.sensors.redis_sla"]}],
        "triggers": [
            {
                "integration-name": "Clickstream",
                "python-modules": ["clickstream.triggers.streaming_job", "clickstream.triggers.redis_sla"],
            }
        ],
    }
