"""The figures read from vegeta's reports: milliseconds, every non-2xx answer an error, a few distinct samples."""

from __future__ import annotations

import base64
import json
import stat

from bench import vegeta


def hit(code: int, body: bytes = b"") -> str:
    return json.dumps({"code": code, "body": base64.b64encode(body).decode()})


def test_figures_are_in_milliseconds_and_count_every_answer_but_a_2xx_as_an_error():
    report = {
        "requests": 6000,
        "throughput": 197.5,
        "latencies": {"50th": 1_500_000, "99th": 12_250_000, "max": 80_000_000},
        "status_codes": {"200": 5990, "503": 6, "0": 4},
        "errors": ["Get ...: context deadline exceeded"],
    }
    hits = [hit(200), hit(503, b'{"detail":"Redis is down"}'), hit(503, b'{"detail":"Redis is down"}'), hit(0)]
    got = vegeta.figures(200, report, hits)
    assert (got["p50_ms"], got["p99_ms"], got["max_ms"]) == (1.5, 12.25, 80.0)
    assert got["status_codes"] == {200: 5990, 503: 6, 0: 4}
    assert got["errors"] == 10  # a 503 and no answer at all (code 0) alike
    assert got["error_samples"] == ['HTTP 503: {"detail":"Redis is down"}']  # distinct answers only; 0 has no body
    assert got["error_messages"] == ["Get ...: context deadline exceeded"]
    assert (got["rate"], got["requests"], got["throughput"]) == (200, 6000, 197.5)


def test_at_most_three_error_samples_are_kept():
    report = {"requests": 5, "throughput": 5.0, "latencies": {"50th": 0, "99th": 0, "max": 0}, "status_codes": {}}
    got = vegeta.figures(5, report, [hit(500 + i, b"x") for i in range(5)])
    assert got["error_samples"] == ["HTTP 500: x", "HTTP 501: x", "HTTP 502: x"]
    assert got["errors"] == 0 and got["error_messages"] == []  # the counts come from the report, not the sample


def test_the_targets_file_holds_the_token_and_is_private(tmp_path):
    path = vegeta.write_targets(tmp_path / "targets", "http://127.0.0.1:8080", ["/a?x=1", "/b"], "jwt")
    assert path.read_text() == (
        "GET http://127.0.0.1:8080/a?x=1\nAuthorization: Bearer jwt\n\n"
        "GET http://127.0.0.1:8080/b\nAuthorization: Bearer jwt\n\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
