"""The window labels the hot read asks Redis for, made once per minute and ``last``."""

from __future__ import annotations

import pytest

from clickstream.schema import WINDOW_MS, window_label
from clickstream.serving.feature_store import MAX_WINDOWS, BadParameter, page_window_labels

NOW_MS = 1_764_000_000_000 + 37_250  # 37.25 s into a minute


def test_labels_are_the_last_windows_oldest_first_and_encoded_for_redis() -> None:
    labels, fields = page_window_labels("/home", 3, NOW_MS)
    newest = NOW_MS - NOW_MS % WINDOW_MS
    assert labels == tuple(window_label(newest - i * WINDOW_MS) for i in (2, 1, 0))
    assert fields == tuple(label.encode() for label in labels)


def test_the_same_minute_gives_the_same_labels_and_the_next_minute_moves_on() -> None:
    first, _ = page_window_labels("/home", 60, NOW_MS)
    assert page_window_labels("/about", 60, NOW_MS + 1_000)[0] is first
    moved, _ = page_window_labels("/home", 60, NOW_MS + WINDOW_MS)
    assert moved[:-1] == first[1:]
    assert moved[-1] == window_label(NOW_MS - NOW_MS % WINDOW_MS + WINDOW_MS)
    assert page_window_labels("/home", 1, NOW_MS)[0] == first[-1:]


@pytest.mark.parametrize(("page", "last"), [("", 5), ("/home\n", 5), ("/home", 0), ("/home", MAX_WINDOWS + 1)])
def test_parameters_are_checked_before_any_label_is_made(page: str, last: int) -> None:
    with pytest.raises(BadParameter):
        page_window_labels(page, last, NOW_MS)
