"""The serving benchmark waits for the api-server to work off a backlog before it measures the next load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.serving_http import wait_until_drained


class Backlogged(BaseHTTPRequestHandler):
    """Slow (``slow_s``) for its first ``slow_requests`` answers, as an api-server still busy with dropped ones."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the benchmark's client
    slow_requests = 0
    slow_s = 0.03
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers["Authorization"])
        if len(type(self).seen) <= type(self).slow_requests:
            time.sleep(type(self).slow_s)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[Backlogged]]]:
    handler = type("Handler", (Backlogged,), {"seen": [], "slow_requests": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()


def test_it_waits_until_twenty_answers_in_a_row_are_near_idle_speed(server):
    port, handler = server
    handler.slow_requests, handler.slow_s = 15, 0.1  # far from the 10 ms x 5 limit, whatever the machine's load
    waited = wait_until_drained(port, "the-token", ["/home", "/search"], baseline_ms=10.0)
    assert len(handler.seen) == 15 + 20  # twenty fast answers in a row after the slow ones
    assert waited >= 15 * handler.slow_s
    assert set(handler.seen) == {"Bearer the-token"}


def test_an_idle_server_takes_twenty_requests(server):
    port, handler = server
    wait_until_drained(port, "t", ["/home"], baseline_ms=10.0)
    assert len(handler.seen) == 20


def test_a_server_that_stays_slow_stops_the_run_saying_so(server):
    port, handler = server
    handler.slow_requests = 10**6
    said = r"still slow 1s after the last load \(slowest of the last 20 requests 3\d\.\d ms, 1\.0 ms idle\)"
    with pytest.raises(SystemExit, match=said):
        wait_until_drained(port, "t", ["/home"], baseline_ms=1.0, timeout_s=1)
