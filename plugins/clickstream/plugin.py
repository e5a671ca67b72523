"""The Airflow plugin entry point: one small class, registered through ``airflow.plugins``."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from clickstream.serving.app import create_app

SERVING_PREFIX = "/clickstream"


class ClickstreamPlugin(AirflowPlugin):
    """Registers the clickstream package with Airflow: ``airflow plugins`` lists it, and the api-server mounts
    the feature-serving API (:mod:`clickstream.serving.app`) under ``/clickstream/api/v1``."""

    name = "clickstream"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": SERVING_PREFIX, "name": "Clickstream feature serving"},
    ]
