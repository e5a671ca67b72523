"""The serving API's shape, from its OpenAPI schema: no process, no Redis (the routes run in
tests/integration/test_running_stack.py, behind the real api-server's auth)."""

from __future__ import annotations

from clickstream.serving.app import API_PREFIX, create_app


def test_every_route_takes_only_its_own_parameters_and_needs_a_login():
    schema = create_app(lambda conn_id: None).openapi()
    routes = {(method.upper(), path) for path, methods in schema["paths"].items() for method in methods}
    assert routes == {
        ("GET", f"{API_PREFIX}/pages/windows"),
        ("GET", f"{API_PREFIX}/windows/{{window}}"),
        ("GET", f"{API_PREFIX}/top-pages"),
        ("GET", f"{API_PREFIX}/streaming"),
        ("GET", f"{API_PREFIX}/dead-letters"),
        ("GET", f"{API_PREFIX}/dashboard"),
        ("GET", f"{API_PREFIX}/runs"),
        ("GET", f"{API_PREFIX}/runs/{{run_id}}/report"),
        ("POST", f"{API_PREFIX}/streaming/stop"),
    }

    def parameters(method: str, path: str) -> set[str]:
        return {p["name"] for p in schema["paths"][path][method].get("parameters", [])}

    # A dependency read as a query parameter (an annotation FastAPI could not resolve) would show up here.
    assert parameters("get", f"{API_PREFIX}/pages/windows") == {"page", "last"}
    assert parameters("get", f"{API_PREFIX}/top-pages") == {"from", "to", "limit"}
    assert parameters("get", f"{API_PREFIX}/windows/{{window}}") == {"window"}
    assert parameters("get", f"{API_PREFIX}/streaming") == set()
    assert parameters("post", f"{API_PREFIX}/streaming/stop") == {"reason"}
    assert parameters("get", f"{API_PREFIX}/dead-letters") == {"last"}
    assert parameters("get", f"{API_PREFIX}/dashboard") == {"windows", "top"}
    assert parameters("get", f"{API_PREFIX}/runs") == {"limit"}  # the database session is a dependency
    assert parameters("get", f"{API_PREFIX}/runs/{{run_id}}/report") == {"run_id"}


def test_access_is_the_auth_managers_own_decision_made_on_the_event_loop(monkeypatch):
    """Reads need read access to the pipeline DAG, the stop needs edit access, as SimpleAuthManager's roles
    grant them; the check is a coroutine (no thread-pool hop) unless multi-team mode needs the DAG's team."""
    import asyncio
    import inspect

    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import HTTPException

    from clickstream.serving.app import _access

    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "False")
    create_auth_manager()
    read, edit = _access("GET"), _access("PUT")
    assert inspect.iscoroutinefunction(read) and inspect.iscoroutinefunction(edit)

    def allowed(check, role: str) -> bool:
        try:
            asyncio.run(check(SimpleAuthManagerUser(username=role, role=role)))
        except HTTPException as refused:
            assert (refused.status_code, refused.detail) == (403, "Forbidden")
            return False
        return True

    assert [allowed(read, role) for role in ("viewer", "user", "admin")] == [True, True, True]
    assert [allowed(edit, role) for role in ("viewer", "user", "admin")] == [False, True, True]
    assert not allowed(read, "")  # a user without a role

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    team_aware = _access("GET")
    assert not inspect.iscoroutinefunction(team_aware)
    assert team_aware.__qualname__ == requires_access_dag("GET").__qualname__  # Airflow's own, team lookup included
