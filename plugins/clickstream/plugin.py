"""The Airflow plugin entry point: one small class, registered through ``airflow.plugins``."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from clickstream.serving.app import create_app
from clickstream.serving.ui import BUNDLE, ICON, create_ui_app

SERVING_PREFIX = "/clickstream"
UI_PREFIX = "/clickstream-ui"
NAV_ROUTE = "clickstream"  # the view is at <Airflow UI>/plugin/clickstream
REPORT_ROUTE = "clickstream_report"  # a run's report at <Airflow UI>/dags/<dag>/runs/<run>/plugin/clickstream_report


def _ui_url(name: str, view: str = "") -> str:
    """A URL of the UI bundle's app, relative (no leading slash): the Airflow UI resolves it against its own
    base URL, so it holds under a ``[api] base_url`` with a path too."""
    return f"{UI_PREFIX.lstrip('/')}/static/{name}" + (f"?view={view}" if view else "")


# Both apps render the bundle's one component, which shows a run's report when the UI passes it a run. Each
# gets its own bundle URL: the UI clears the bundle's global before each import, and a module imported a
# second time from the same URL would not set it again.
REACT_APPS = [
    {
        "name": "Clickstream",
        "bundle_url": _ui_url(BUNDLE, "nav"),
        "destination": "nav",
        "url_route": NAV_ROUTE,
        "nav_top_level": True,
        "icon": _ui_url(ICON),
    },
    {
        # Airflow 3.3 cannot restrict a tab to one DAG: on other DAGs' runs the tab says it does not apply.
        "name": "Clickstream report",
        "bundle_url": _ui_url(BUNDLE, "dag_run"),
        "destination": "dag_run",
        "url_route": REPORT_ROUTE,
        "icon": _ui_url(ICON),
    },
]


class ClickstreamPlugin(AirflowPlugin):
    """Registers the clickstream package with Airflow: ``airflow plugins`` lists it, the api-server mounts the
    feature-serving API (:mod:`clickstream.serving.app`) under ``/clickstream/api/v1`` and the UI's bundle
    (:mod:`clickstream.serving.ui`) under ``/clickstream-ui``, and the UI shows the "Clickstream" view in its
    navigation and a "Clickstream report" tab on each DAG run."""

    name = "clickstream"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": SERVING_PREFIX, "name": "Clickstream feature serving"},
        {"app": create_ui_app(), "url_prefix": UI_PREFIX, "name": "Clickstream UI"},
    ]
    react_apps = REACT_APPS
