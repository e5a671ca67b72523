"""The serving benchmark's reference: the same feature read served by a bare FastAPI app under uvicorn.

It answers the plugin's route with the plugin's own read (:func:`clickstream.serving.feature_store.page_windows_async`
over a ``redis.asyncio`` client as the ``reader`` user, the answer encoded the same way), in the same number of
worker processes, on the same machine and in the same run as the api-server. What it leaves out is Airflow's
request path: its middlewares, the token check with its revocation query, the access log. So the api-server's
figures over this one's are what serving through Airflow costs, and this one's against the target are what
the machine itself allows a Python server.

Run by :mod:`bench.serving`: ``python -m uvicorn bench.serving_reference:create_app --factory``, the reader's
Redis URL in ``CLICKSTREAM_REFERENCE_REDIS_URL`` (an environment variable, not the command line, since it
holds the password). It asks for no token, so it listens on loopback only and lives as long as one load.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import Response

from bench.serving_http import ROUTE
from clickstream.serving.feature_store import page_windows_async

REDIS_URL_VARIABLE = "CLICKSTREAM_REFERENCE_REDIS_URL"
REPO = Path(__file__).resolve().parent.parent


def create_app() -> FastAPI:
    """The reference app; each uvicorn worker process builds its own, with its own Redis client."""
    import redis.asyncio

    reader = redis.asyncio.Redis.from_url(os.environ[REDIS_URL_VARIABLE], socket_timeout=2.0)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(ROUTE)
    async def page_windows(page: Annotated[str, Query()], last: Annotated[int, Query()] = 60) -> Response:
        answer = await page_windows_async(reader, page, last)
        return Response(json.dumps(answer, separators=(",", ":")).encode(), media_type="application/json")

    return app


@contextlib.contextmanager
def reference_server(port: int, redis_url: str, workers: int) -> Iterator[None]:
    """:mod:`bench.serving_reference` under uvicorn on ``port`` with ``workers`` processes, for the block."""
    cmd = [sys.executable, "-m", "uvicorn", "bench.serving_reference:create_app", "--factory",
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--no-access-log", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, REDIS_URL_VARIABLE: redis_url}
    server = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
