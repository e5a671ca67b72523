"""The feature-serving API, mounted by the api-server under ``/clickstream`` (``ClickstreamPlugin.fastapi_apps``).

Airflow mounts a plugin's app without its own authentication, so every route here depends on the
api-server's security dependencies: reads need read access to the ``clickstream_pipeline`` DAG, the one
write (asking the streaming job to stop) needs edit access. The JWT comes from the ``Authorization``
header or the UI's ``_token`` cookie, as for Airflow's own API.
"""

# No `from __future__ import annotations`: FastAPI must resolve the routes' annotations, and some name
# types local to create_app(), which a string annotation cannot reach.
import json
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from clickstream import redis_layout
from clickstream.serving import pipeline_runs
from clickstream.serving.feature_store import (
    MAX_TOP,
    MAX_WINDOWS,
    BadParameter,
    FeatureStore,
    NotFound,
    page_windows_async,
)
from clickstream.serving.pipeline_runs import MAX_RUNS, recent_runs

API_PREFIX = "/api/v1"
DAG_ID = "clickstream_pipeline"
READER_CONN_ID = "redis_reader"  # read only: the reads can change nothing
WRITER_CONN_ID = "redis_default"  # the stop request is a write to the control hash


# A Redis that hangs gets a 503 within this, never a request thread held for good; the connection's
# socket_timeout and socket_connect_timeout extras, when set, win (clickstream.hooks.redis.client_timeouts).
REDIS_TIMEOUT_S = 2.0


def _access(method: str) -> Callable[..., Any]:
    """The api-server's own check of ``method`` on the pipeline DAG: 401 without a valid token, 403 without
    the right. (Imported when the app is built, which is wherever the plugin loads; it only runs in the
    api-server.)

    Without multi-team mode this is ``requires_access_dag``'s check made async: the same ``get_user`` (the
    JWT, its signature, expiry and revocation) and the same auth manager's ``is_authorized_dag``, on the
    event loop. Airflow's own dependency is sync, so FastAPI runs it in a thread, and it looks up the DAG's
    team in the database on every request; a team means nothing without multi-team mode (Airflow's own
    connection, variable and pool checks skip it then too). The thread hop alone cost the feature read its
    tail: two threads of one worker wait on each other's GIL for up to its 5 ms switch interval. With
    multi-team mode on, the check is Airflow's own dependency, team lookup included.
    """
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
    from airflow.configuration import conf

    if conf.getboolean("core", "multi_team", fallback=False):
        return requires_access_dag(method, param_dag_id=DAG_ID)  # type: ignore[arg-type]

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    details = DagDetails(id=DAG_ID)

    async def requires_access_to_pipeline(user: GetUserDep) -> None:
        if not get_auth_manager().is_authorized_dag(method=method, details=details, user=user):  # type: ignore[arg-type]
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    return requires_access_to_pipeline


def _client(conn_id: str, asynchronous: bool = False) -> Any:
    """A client for connection ``conn_id`` (a ``redis.asyncio`` one when ``asynchronous``) whose commands time
    out, after one PING that checks its login."""
    import redis
    import redis.asyncio

    from clickstream.hooks.redis import ClickstreamRedisHook, client_timeouts, redis_url

    ClickstreamRedisHook(redis_conn_id=conn_id).get_conn()  # a wrong user or password fails here, saying so
    conn = ClickstreamRedisHook.get_connection(conn_id)
    kind = redis.asyncio.Redis if asynchronous else redis.Redis
    return kind.from_url(redis_url(conn), **client_timeouts(conn, default_s=REDIS_TIMEOUT_S))


def _async_client(conn_id: str) -> Any:
    return _client(conn_id, asynchronous=True)


def _json(answer: Any) -> Response:
    """An answer already encoded: FastAPI's generic encoding of a returned dict costs more than the read."""
    return Response(json.dumps(answer, separators=(",", ":")).encode(), media_type="application/json")


def create_app(
    client_factory: Callable[[str], Any] = _client, async_client_factory: Callable[[str], Any] = _async_client
) -> FastAPI:
    """The app; ``client_factory(conn_id)`` gives a Redis client for a connection id, made once per id (a
    client holds a pool of connections, so requests do not pay for a connection or a lookup each), and
    ``async_client_factory`` an asyncio one for the hot read."""
    clients: dict[tuple[str, bool], Any] = {}
    lock = threading.Lock()  # routes run in a thread pool: two first requests must not both build a client

    def client(conn_id: str, asynchronous: bool = False) -> Any:
        with lock:
            if (conn_id, asynchronous) not in clients:
                try:
                    factory = async_client_factory if asynchronous else client_factory
                    clients[(conn_id, asynchronous)] = factory(conn_id)
                except Exception as exc:  # a missing connection, a refused login: the store is unusable, say why
                    raise HTTPException(
                        status.HTTP_503_SERVICE_UNAVAILABLE,
                        f"the feature store is not reachable through {conn_id!r}: {exc}",
                    ) from None
            return clients[(conn_id, asynchronous)]

    app = FastAPI(
        title="Clickstream feature serving",
        version="1",
        description="Per-page click counts in 1-minute windows, window summaries and the streaming job's state, "
        "read from the pipeline's Redis feature store.",
        # FastAPI's own schema and docs routes take no dependencies: the schema is served below, behind auth.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    from airflow.api_fastapi.common.db.common import SessionDep  # the api-server's own database session

    read = [Depends(_access("GET"))]
    edit = [Depends(_access("PUT"))]

    @app.get(f"{API_PREFIX}/openapi.json", dependencies=read, include_in_schema=False)
    def openapi(request: Request) -> dict[str, Any]:
        # Mounted under a prefix: the schema names it as its server, so generated clients call the right URLs.
        schema = dict(app.openapi())
        schema["servers"] = [{"url": request.scope.get("root_path") or "/"}]
        return schema

    def store() -> FeatureStore:
        return FeatureStore(client(READER_CONN_ID))

    Store = Annotated[FeatureStore, Depends(store)]

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_400_BAD_REQUEST, content={"detail": str(exc)})

    @app.exception_handler(RedisError)
    async def store_unavailable(request: Request, exc: RedisError) -> JSONResponse:
        detail = f"the feature store (connection {READER_CONN_ID!r}) did not answer: {type(exc).__name__}: {exc}"
        return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content={"detail": detail})

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})

    @app.get(
        f"{API_PREFIX}/pages/windows",
        dependencies=read,
        summary="A page's counts in the last N windows",
        response_class=JSONResponse,
    )
    async def page_windows(
        page: Annotated[str, Query(description="the page, as counted (e.g. /products/1)")],
        last: Annotated[int, Query(description=f"how many 1-minute windows, 1 to {MAX_WINDOWS}")] = 60,
    ) -> Response:
        # The feature read a model server calls per request: on the event loop, over an asyncio client, its
        # answer encoded here (the login check is the api-server's own, as for every route).
        reader = client(READER_CONN_ID, asynchronous=True)
        return _json(await page_windows_async(reader, page, last))

    @app.get(f"{API_PREFIX}/windows/{{window}}", dependencies=read, summary="A window's total, users, top pages")
    def window(feature_store: Store, window: str) -> dict[str, Any]:
        return feature_store.window(window)

    @app.get(f"{API_PREFIX}/top-pages", dependencies=read, summary="The top pages over a range of windows")
    def top_pages(
        feature_store: Store,
        start: Annotated[str, Query(alias="from", description="first window label, e.g. 2025-06-10T05:00:00")],
        end: Annotated[str, Query(alias="to", description="last window label (included)")],
        limit: Annotated[int, Query(description=f"1 to {MAX_TOP}")] = 10,
    ) -> dict[str, Any]:
        return feature_store.top_pages(start, end, limit)

    @app.get(f"{API_PREFIX}/streaming", dependencies=read, summary="The streaming query's state")
    def streaming(feature_store: Store) -> dict[str, Any]:
        return feature_store.streaming_state()

    @app.get(f"{API_PREFIX}/dead-letters", dependencies=read, summary="Dead letters by reason per window")
    def dead_letters(
        feature_store: Store,
        last: Annotated[
            int, Query(description=f"how many of the newest windows with dead letters, 1 to {MAX_WINDOWS}")
        ] = 60,
    ) -> dict[str, Any]:
        return feature_store.dead_letters(last)

    @app.get(f"{API_PREFIX}/dashboard", dependencies=read, summary="Everything the Clickstream view shows")
    def dashboard(
        feature_store: Store,
        windows: Annotated[int, Query(description=f"how many of the newest windows, 1 to {MAX_WINDOWS}")] = 30,
        top: Annotated[int, Query(description=f"how many top pages, 1 to {MAX_TOP}")] = 10,
    ) -> dict[str, Any]:
        return feature_store.dashboard(windows, top)

    @app.get(f"{API_PREFIX}/runs", dependencies=read, summary="The pipeline's newest runs and their state")
    def runs(session: SessionDep, limit: Annotated[int, Query(description=f"1 to {MAX_RUNS}")] = 10) -> dict:
        return {"dag_id": DAG_ID, "runs": recent_runs(session, DAG_ID, limit)}

    @app.get(
        f"{API_PREFIX}/runs/{{run_id}}/report",
        dependencies=read,
        summary="A run's events sent per page beside Redis's counts, and the reconciler's report",
    )
    def run_report(session: SessionDep, feature_store: Store, run_id: str) -> dict[str, Any]:
        return pipeline_runs.run_report(session, feature_store.client, DAG_ID, run_id)

    @app.post(
        f"{API_PREFIX}/streaming/stop",
        dependencies=edit,
        status_code=status.HTTP_202_ACCEPTED,
        summary="Ask the supervised streaming job to stop cleanly",
    )
    def stop_streaming(reason: Annotated[str, Query(max_length=200)] = "stopped from the serving API") -> dict:
        writer = client(WRITER_CONN_ID)
        try:
            redis_layout.request_stop(writer, reason=reason)
        except Exception as exc:  # the store is down or refuses: say so, never a bare 500
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"could not ask the job to stop: {exc}") from None
        return {"requested": True, "reason": reason}

    return app
