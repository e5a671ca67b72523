"""Which Kafka time range the reconciler recounts."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from clickstream.operators.reconcile import burst_time_range


def test_the_burst_range_is_used_unless_bounds_are_given():
    burst = {"kafka_time_range_ms": [100, 200]}
    assert burst_time_range(burst, None, None) == (100, 200)
    assert burst_time_range(burst, "150", "") == (150, None)
    assert burst_time_range(None, None, None) == (None, None)


def test_a_burst_without_its_range_fails_saying_what_to_pass():
    with pytest.raises(AirflowFailException, match="pass the XCom of ProduceClickstreamBurstOperator"):
        burst_time_range({"topic": "t"}, None, None)
