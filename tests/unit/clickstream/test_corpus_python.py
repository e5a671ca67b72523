"""The shared corpus says what the Python validator does; the Spark parity test holds Spark to the same."""

from __future__ import annotations

import corpus
import pytest

from clickstream.schema import InvalidEvent, validate


@pytest.mark.parametrize(("raw", "expected"), corpus.corpus()[: len(corpus.CRAFTED)])
def test_python_validator_on_the_crafted_corpus(raw, expected):
    try:
        validate(raw, now_ms=corpus.NOW)
        reason = None
    except InvalidEvent as exc:
        reason = exc.reason
    assert reason is expected
