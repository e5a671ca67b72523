"""The Airflow plugin entry point: one small class, registered through ``airflow.plugins``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from clickstream.serving.ui import BUNDLE, ICON

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


class AppOnFirstRequest:
    """An ASGI app that ``factory`` builds on its first request.

    Airflow loads plugins in every process that runs a task, parses DAG files or serializes them, and in
    each CLI call; only the api-server serves these apps. Building them imports FastAPI and the
    api-server's security module, which cost each of those processes one to two seconds here.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if self.app is None:  # one event loop per api-server worker: no other request can race this build
            self.app = self.factory()
        await self.app(scope, receive, send)


def _serving_app() -> Any:
    from clickstream.serving.app import create_app

    return create_app()


def _ui_app() -> Any:
    from clickstream.serving.ui import create_ui_app

    return create_ui_app()


class ClickstreamPlugin(AirflowPlugin):
    """Registers the clickstream package with Airflow: ``airflow plugins`` lists it, the api-server mounts the
    feature-serving API (:mod:`clickstream.serving.app`) under ``/clickstream/api/v1`` and the UI's bundle
    (:mod:`clickstream.serving.ui`) under ``/clickstream-ui``, and the UI shows the "Clickstream" view in its
    navigation and a "Clickstream report" tab on each DAG run."""

    name = "clickstream"
    fastapi_apps = [
        {"app": AppOnFirstRequest(_serving_app), "url_prefix": SERVING_PREFIX, "name": "Clickstream feature serving"},
        {"app": AppOnFirstRequest(_ui_app), "url_prefix": UI_PREFIX, "name": "Clickstream UI"},
    ]
    react_apps = REACT_APPS
