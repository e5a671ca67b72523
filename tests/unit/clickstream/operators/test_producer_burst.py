from __future__ import annotations

import pytest

from clickstream.operators.producer_burst import ProduceClickstreamBurstOperator, plan_burst

NOW = 1_750_000_000_000


def test_full_speed_burst_is_back_dated_to_end_now():
    count, pace, density, start = plan_burst(100_000, None, None, NOW, 1000.0)
    assert (count, pace, density) == (100_000, None, 1000.0)
    assert start == NOW - 100_000  # 100,000 events at 1,000/s span 100 s of event time, the newest at NOW


def test_paced_burst_starts_now_at_its_rate():
    assert plan_burst(None, 30, 200.0, NOW, 1000.0) == (6000, 200.0, 200.0, NOW)
    assert plan_burst(500, None, 50.0, NOW, 1000.0) == (500, 50.0, 50.0, NOW)


@pytest.mark.parametrize(
    ("events", "duration", "rate", "message"),
    [
        (None, None, None, "exactly one of events"),
        (10, 5, 1.0, "exactly one of events"),
        (None, 5, None, "duration_s needs rate"),
        (0, None, None, "events must be positive"),
        (10, None, -1.0, "rate must be positive"),
    ],
)
def test_bad_arguments_say_what_to_fix(events, duration, rate, message):
    with pytest.raises(ValueError, match=message):
        plan_burst(events, duration, rate, NOW, 1000.0)


def test_templated_strings_become_a_traffic_config():
    op = ProduceClickstreamBurstOperator(
        task_id="burst", events="2000", rate="", seed="7", late_share="0.1", malformed_share="0.01"
    )
    config, count, pace = op.traffic(NOW)
    assert (count, pace, config.seed, config.late_share, config.malformed_share) == (2000, None, 7, 0.1, 0.01)


def test_invalid_shares_fail_the_task_with_the_reason():
    from airflow.sdk.exceptions import AirflowFailException

    op = ProduceClickstreamBurstOperator(task_id="burst", events=10, malformed_share=2)
    with pytest.raises(AirflowFailException, match="malformed_share must be between 0 and 1"):
        op.traffic(NOW)
