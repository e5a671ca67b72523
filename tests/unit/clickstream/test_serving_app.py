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
