"""The serving benchmark judges the api-server against the target and only reports the reference beside it."""

from __future__ import annotations

from bench.serving_report import report


def figures(p50: float, p99: float, **extra: object) -> dict:
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": p99 * 2, "requests": 6000, "status_codes": {200: 6000}, **extra}


def load(beside: str, p99: float) -> dict:
    extra = {"rate": 200, "beside": beside, "errors": 0, "error_messages": [], "error_samples": [], "throughput": 200}
    return figures(p99 / 2, p99, **extra)


def test_the_reference_is_reported_and_compared_but_never_judged(capsys):
    floor = {"round_trip": figures(0.2, 0.4), "page_windows": figures(0.25, 0.45)}
    paced = {
        place: {"back to back": figures(1.0, 2.0), "5 ms apart": figures(2.0, 4.0)} for place in ("alone", "reference")
    }
    loads = [load("stack", 12.0), load("alone", 6.0), load("reference", 30.0)]
    result = report(floor, figures(2.0, 4.0), loads, 61, paced)
    printed = capsys.readouterr().out
    assert result["missed"] == [
        "p99 12.00 ms with 0 errors at 200 requests/s, beside the whole stack (target p99 <= 5 ms, no errors)",
        "p99 6.00 ms with 0 errors at 200 requests/s, api-server + Redis alone (target p99 <= 5 ms, no errors)",
    ]
    assert "HTTP, vegeta 200/s, reference: bare FastAPI + Redis" in printed
    assert "HTTP, one client, 5 ms apart, reference: bare FastAPI + Redis" in printed
    assert "the api-server over the reference (what Airflow's request path costs): p50 x0.20, p99 x0.20" in printed
    assert "reference: bare FastAPI + Redis: MISSED" not in printed
