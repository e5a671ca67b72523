"""The Airflow plugin entry point: one small class, registered through ``airflow.plugins``."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class ClickstreamPlugin(AirflowPlugin):
    """Registers the clickstream package with Airflow so ``airflow plugins`` lists it."""

    name = "clickstream"
