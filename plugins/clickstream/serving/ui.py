"""The Clickstream UI's bundle, served by the api-server under ``/clickstream-ui`` (``ClickstreamPlugin``).

The Airflow UI loads ``static/clickstream.umd.js`` for the plugin's ``react_apps``: the "Clickstream" view in
its navigation and the "Clickstream report" tab of a DAG run. The bundle is built from ``www/`` by
``make setup`` (``npm ci`` and ``npm run build``) into ``www/dist``, which the wheel ships.

The files are code and an icon, no data: like the UI's own assets they are served without a login. What the
bundle shows comes from the serving API (:mod:`clickstream.serving.app`), behind Airflow's auth.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

WWW = Path(__file__).resolve().parent.parent / "www"
DIST = WWW / "dist"
BUNDLE = "clickstream.umd.js"
ICON = "clickstream.svg"
MEDIA_TYPES = {".js": "text/javascript", ".svg": "image/svg+xml", ".map": "application/json", ".css": "text/css"}


def missing_bundle_message(dist: Path = DIST) -> str:
    return f"the Clickstream UI is not built ({dist / BUNDLE} is missing): run `make setup`, which builds it"


def create_ui_app(dist: Path = DIST) -> FastAPI:
    """The app serving ``dist`` under ``/static``. The bundle is looked for on each request, so one built
    after the api-server started is served without a restart; until then each request gets a 503 that
    says how to build it. (FastAPI is imported here: Airflow loads the plugin, and with it this module, in
    every process that runs a task or parses DAGs; only the api-server builds the app.)"""
    from fastapi import FastAPI, HTTPException, status
    from fastapi.responses import FileResponse

    app = FastAPI(title="Clickstream UI", openapi_url=None, docs_url=None, redoc_url=None)
    root = dist.resolve()

    @app.get("/static/{name:path}", include_in_schema=False, response_class=FileResponse)
    def static(name: str):  # returns a FileResponse; a string annotation of it would not resolve here
        if not (root / BUNDLE).is_file():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, missing_bundle_message(dist))
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {name!r} in the Clickstream UI")
        # Revalidated on each load (the ETag makes that a 304): a rebuilt bundle shows up at the next visit.
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
            headers={"Cache-Control": "no-cache"},
        )

    return app
