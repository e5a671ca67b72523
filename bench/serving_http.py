"""The serving benchmark's HTTP side: the measured read, timed, and waits on the api-server between loads."""

from __future__ import annotations

import http.client
import itertools
import time
import urllib.parse
from pathlib import Path

from bench import vegeta

ROUTE = "/clickstream/api/v1/pages/windows"
LAST = 60  # windows per read, as the route's default


def page_path(page: str) -> str:
    return f"{ROUTE}?{urllib.parse.urlencode({'page': page, 'last': LAST})}"


def timed_get(conn: http.client.HTTPConnection, token: str, page: str) -> tuple[float, int]:
    """One authenticated ``GET`` of ``page``'s windows over ``conn``: its seconds and status."""
    started = time.perf_counter()
    conn.request("GET", page_path(page), headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    return time.perf_counter() - started, response.status


def probe(port: int, token: str, page: str) -> tuple[float, int]:
    """:func:`timed_get` on a connection of its own, so that any worker process may answer it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return timed_get(conn, token, page)
    finally:
        conn.close()


def wait_until_drained(port: int, token: str, pages: list[str], baseline_ms: float, timeout_s: float = 180) -> float:
    """Wait until the api-server answers as fast as it did with nothing queued; the seconds it took.

    Requests that vegeta gave up on are still worked off by the api-server (a closed connection does not
    cancel them): a load measured right after an overload would measure that backlog. Each probe opens a
    connection of its own, so that every worker process gets probed, not only the one a keep-alive
    connection is stuck to. Drained means 20 probes in a row each answered within five times
    ``baseline_ms`` (the one-client median)."""
    recent: list[float] = []
    started = time.monotonic()
    for page in itertools.cycle(pages):
        recent = [*recent[-19:], probe(port, token, page)[0] * 1000]
        if len(recent) == 20 and max(recent) <= 5 * baseline_ms:
            break
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"the api-server was still slow {timeout_s:.0f}s after the last load (slowest of "
                             f"the last 20 requests {max(recent):.1f} ms, {baseline_ms:.1f} ms idle)")  # fmt: skip
        time.sleep(0.05)
    return time.monotonic() - started


def wait_until_answering(port: int, token: str, page: str, timeout_s: float = 180) -> None:
    """Wait until a (re)started api-server answers the measured read."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if probe(port, token, page)[1] == 200:
                return
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise SystemExit(f"the api-server did not answer the read {timeout_s:.0f}s after its restart")
        time.sleep(0.5)


def write_targets(path: Path, port: int, token: str, pages: list[str]) -> Path:
    """vegeta's targets, one per page (it rotates over them), each with the JWT; 0600, since it holds the token."""
    return vegeta.write_targets(path, f"http://127.0.0.1:{port}", [page_path(p) for p in pages], token)
