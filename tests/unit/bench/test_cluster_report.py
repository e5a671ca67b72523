"""The cluster benchmark's report: its ratios, and a miss for every run that did not count exactly."""

from __future__ import annotations

from bench.cluster_report import report
from bench.producer import Round

EVENTS = 2_000_000


def streaming_run(events_per_s: float, cores: int, counted: int = EVENTS, wrong: int = 0) -> dict:
    return {
        "counted_events": counted,
        "counted_cells_wrong": wrong,
        "executor_cores": cores,
        "batches": 8,
        "to_batch_0_s": 10.0,
        "events_per_s": events_per_s,
        "redis_calls": {"hincrby": 2280, "evalsha": 16},
        "redis_commands_per_m_events": 5348.0,
        "redis_cpu_s_per_m_events": 0.13,
        "redis_commands_per_batch": 1188.0,
        "redis_script_ms_per_batch": 4.5,
        "redis_cpu_ms_per_batch": 28.9,
    }


def producer_rates() -> dict:
    rf1 = Round("clickstream producer, confluent-kafka", 1_000_000, 100_000.0, 24.0, 5.0, 40.0)
    rf3 = Round("clickstream producer, confluent-kafka", 1_000_000, 70_000.0, 17.0, 8.0, 90.0)
    tool = {"rf1": rf1, "rf3": rf3, "ratio": 0.7, "spread": {1: [100_000], 3: [70_000]}}
    return {"record_bytes": 241.0, "rounds": 1, "events": 1_000_000, "tools": {"ours": tool}}


def test_the_ratios_come_from_the_runs_and_an_exact_run_misses_nothing(capsys):
    runs = {"local": streaming_run(100_000.0, 2), "cluster": streaming_run(75_000.0, 2)}
    result = report(runs, producer_rates(), EVENTS, 250_000, 2, workers=2)
    assert result["ratios"] == {"cluster_to_local": 0.75, "rf3_to_rf1_ours": 0.7}
    assert result["missed"] == []
    assert set(result["redis"]["cluster"]) == {key for key in runs["cluster"] if key.startswith("redis_")}
    printed = capsys.readouterr().out
    assert "standalone, 2 one-core workers" in printed and "MISSED" not in printed


def test_a_run_that_lost_events_or_cores_is_a_miss(capsys):
    runs = {"local": streaming_run(100_000.0, 2), "cluster": streaming_run(75_000.0, 1, counted=EVENTS - 3, wrong=2)}
    result = report(runs, producer_rates(), EVENTS, 250_000, 2, workers=2)
    assert result["missed"] == [
        "streaming cluster: counted 1,999,997 of 2,000,000 events, 2 (page, window) cells differ from the ground truth",
        "streaming cluster: the master granted 1 cores, not 2",
    ]
    assert "MISSED" in capsys.readouterr().out
