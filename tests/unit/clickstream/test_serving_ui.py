"""The UI bundle's app and the plugin's react_apps, without a browser or an api-server (the pages themselves
are driven in a real Chromium by tests/integration/test_running_stack.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clickstream.serving.ui import BUNDLE, ICON, create_ui_app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / BUNDLE).write_text("(function(){globalThis.AirflowPlugin=function(){return null}})();")
    (folder / ICON).write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("outside dist")
    return folder


def test_the_bundle_is_served_as_javascript_and_revalidated(dist: Path):
    client = TestClient(create_ui_app(dist))
    response = client.get(f"/static/{BUNDLE}", params={"view": "nav"})
    assert response.status_code == 200
    # A module script with any other type is refused by the browser (the UI imports the bundle as a module).
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-cache" and response.headers["etag"]
    assert "AirflowPlugin" in response.text
    assert client.get(f"/static/{ICON}").headers["content-type"].startswith("image/svg+xml")


def test_nothing_outside_dist_and_no_missing_file_is_served(dist: Path):
    client = TestClient(create_ui_app(dist))
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/nothing.js", "/static/"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "outside dist" not in response.text


def test_an_unbuilt_bundle_says_how_to_build_it_and_a_later_build_is_served(tmp_path: Path):
    dist = tmp_path / "dist"
    client = TestClient(create_ui_app(dist))
    response = client.get(f"/static/{BUNDLE}")
    assert response.status_code == 503
    assert "make setup" in response.json()["detail"] and str(dist / BUNDLE) in response.json()["detail"]
    dist.mkdir()
    (dist / BUNDLE).write_text("built later")
    assert client.get(f"/static/{BUNDLE}").text == "built later"


def test_the_react_apps_are_what_airflow_3_3_accepts():
    """The nav view and the dag_run tab: valid for the UI's own response model, one URL route each, and a
    bundle URL of each own (the UI imports each app's URL once and reads the global it sets)."""
    from airflow.api_fastapi.core_api.datamodels.plugins import ReactAppResponse

    from clickstream.plugin import UI_PREFIX, ClickstreamPlugin

    apps = [ReactAppResponse.model_validate(app) for app in ClickstreamPlugin.react_apps]
    assert {(app.name, app.destination, app.url_route) for app in apps} == {
        ("Clickstream", "nav", "clickstream"),
        ("Clickstream report", "dag_run", "clickstream_report"),
    }
    urls = [app.bundle_url for app in apps]
    assert len(set(urls)) == 2
    # Relative: resolved against the UI's base URL, and served by the plugin's second app.
    assert all(url.startswith(f"{UI_PREFIX.lstrip('/')}/static/{BUNDLE}?") for url in urls)
    assert {app["url_prefix"] for app in ClickstreamPlugin.fastapi_apps} == {"/clickstream", UI_PREFIX}


def test_the_bundle_and_the_plugin_agree_on_the_report_route():
    """The Clickstream view links each run to its report tab: the bundle's route must be the plugin's."""
    from clickstream.plugin import REPORT_ROUTE

    source = (Path(__file__).resolve().parents[3] / "plugins/clickstream/www/src/api.ts").read_text()
    assert f'export const REPORT_ROUTE = "{REPORT_ROUTE}";' in source


def test_loading_the_plugin_builds_no_app_and_a_mounted_app_is_built_on_its_first_request(dist):
    """Airflow loads the plugin in every task and DAG-parsing process: FastAPI and the api-server's security
    module are imported only when a request reaches an app (the api-server)."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-W", "ignore", "-c",
         "import sys, airflow.plugins_manager, clickstream.plugin;"
         "print(sorted(m for m in ('fastapi', 'airflow.api_fastapi.core_api.security', 'clickstream.serving.app')"
         " if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert loaded.stdout.strip() == "[]"

    from starlette.applications import Starlette
    from starlette.routing import Mount

    from clickstream.plugin import AppOnFirstRequest

    built = []

    def factory():
        built.append(1)
        return create_ui_app(dist)

    lazy = AppOnFirstRequest(factory)
    client = TestClient(Starlette(routes=[Mount("/clickstream-ui", app=lazy)]))
    assert built == []
    assert client.get(f"/clickstream-ui/static/{ICON}").status_code == 200
    assert client.get(f"/clickstream-ui/static/{BUNDLE}").status_code == 200
    assert client.get("/clickstream-ui/static/nothing.js").status_code == 404
    assert built == [1]  # built once, on the first request
