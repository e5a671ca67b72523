"""The serving API's reads against a real Redis, as the read-only ``reader`` user, over cells the pipeline's own
script wrote."""

from __future__ import annotations

import pytest

from clickstream import redis_layout
from clickstream.schema import WINDOW_MS, window_label
from clickstream.serving.feature_store import MAX_WINDOWS, BadParameter, FeatureStore, NotFound

pytestmark = pytest.mark.integration

NOW_MS = 1_796_000_000_000 - 1_796_000_000_000 % WINDOW_MS + 30_000  # half a minute into a window
NEWEST = NOW_MS - NOW_MS % WINDOW_MS


@pytest.fixture
def store(redis_client, redis_server) -> FeatureStore:
    cells = [
        ("/home", NEWEST, 7),
        ("/home", NEWEST - 2 * WINDOW_MS, 3),
        ("/search", NEWEST, 5),
        ("/search", NEWEST - WINDOW_MS, 9),
        ("/products/1", NEWEST - WINDOW_MS, 1),
    ]
    redis_layout.apply_window_counts(redis_client, cells)
    return FeatureStore(redis_server.client("reader"))


def test_a_pages_last_windows_oldest_first_with_zero_where_it_had_none(store: FeatureStore):
    answer = store.page_windows("/home", 3, now_ms=NOW_MS)
    assert answer == {
        "page": "/home",
        "from": window_label(NEWEST - 2 * WINDOW_MS),
        "to": window_label(NEWEST),
        "counts": [3, 0, 7],
        "total": 10,
    }


def test_a_window_and_the_top_pages_over_a_range(store: FeatureStore):
    newest = store.window(window_label(NEWEST))
    assert newest["total"] == 12
    assert newest["top_pages"] == [{"page": "/home", "count": 7}, {"page": "/search", "count": 5}]
    ranked = store.top_pages(window_label(NEWEST - 2 * WINDOW_MS), window_label(NEWEST), limit=2)
    assert ranked["top_pages"] == [{"page": "/search", "count": 14}, {"page": "/home", "count": 10}]
    assert ranked["windows"] == 3


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda s: s.page_windows("", 5), "page must be 1 to 512 characters"),
        (lambda s: s.page_windows("/" + "x" * 600, 5), "page must be 1 to 512 characters, got 601"),
        (lambda s: s.page_windows("/home\n", 5), "control characters"),
        (lambda s: s.page_windows("/home", 0), f"last must be between 1 and {MAX_WINDOWS}, got 0"),
        (lambda s: s.page_windows("/home", MAX_WINDOWS + 1), "last must be between"),
        (lambda s: s.window("2025-06-10 05:04"), "must be a window label like"),
        (lambda s: s.window("2025-06-10T05:04:30"), "must be a window label like"),  # not a window start
        (lambda s: s.window("2025-02-30T05:04:00"), "is not a real date and time"),
        (lambda s: s.top_pages("2025-06-10T05:04:00", "2025-06-10T05:00:00", 5), "is before from"),
        (lambda s: s.top_pages("2025-06-01T00:00:00", "2025-06-10T00:00:00", 5), "at most 1440"),
        (lambda s: s.top_pages("2025-06-10T05:00:00", "2025-06-10T05:04:00", 0), "limit must be between 1 and 100"),
    ],
)
def test_bad_parameters_are_refused_saying_what_is_allowed(store: FeatureStore, read, message: str):
    with pytest.raises(BadParameter, match=message):
        read(store)


def test_what_does_not_exist_is_not_found(store: FeatureStore):
    with pytest.raises(NotFound, match="no counts for page '/never'"):
        store.page_windows("/never", 5, now_ms=NOW_MS)
    with pytest.raises(NotFound, match="no window 2020-01-01T00:00:00"):
        store.window("2020-01-01T00:00:00")
    with pytest.raises(NotFound, match="has not reported yet"):
        store.streaming_state()


def test_the_dashboard_holds_the_newest_windows_the_top_pages_per_window_and_dead_letters(
    store: FeatureStore, redis_client
):
    key = redis_layout.commit_key("query-1")
    letters = {NEWEST: {"bad_json": 2}, NEWEST - WINDOW_MS: {"bad_json": 1, "bad_timestamp": 4}}
    redis_layout.apply_batch(redis_client, key, 0, 0, [], {}, dead_letters=letters)
    redis_client.hset(redis_layout.progress_key(redis_layout.COUNTS_QUERY), mapping={"state": "active"})
    redis_layout.record_launch(redis_client, "run-1")
    redis_layout.record_restart(redis_client, "died: exit 1")

    board = store.dashboard(windows=2, top=2, now_ms=NOW_MS)
    assert [w["window"] for w in board["windows"]] == [window_label(NEWEST - WINDOW_MS), window_label(NEWEST)]
    assert [w["total"] for w in board["windows"]] == [10, 12]
    assert board["top_pages"] == [{"page": "/search", "count": 14}, {"page": "/home", "count": 7}]
    assert board["series"] == {"/search": [9, 5], "/home": [0, 7]}
    assert board["dead_letters"] == [
        {"window": window_label(NEWEST - WINDOW_MS), "reasons": {"bad_json": 1, "bad_timestamp": 4}, "total": 5},
        {"window": window_label(NEWEST), "reasons": {"bad_json": 2}, "total": 2},
    ]
    assert board["dead_letter_totals"] == {"bad_json": 3, "bad_timestamp": 4}
    assert board["streaming"]["state"] == "active"
    assert (board["streaming"]["restarts"], board["streaming"]["last_restart_reason"]) == (1, "died: exit 1")
    assert store.dead_letters(1)["windows"] == board["dead_letters"][1:]


def test_an_empty_store_gives_an_empty_dashboard(redis_client, redis_server):
    board = FeatureStore(redis_server.client("reader")).dashboard(windows=30, now_ms=NOW_MS)
    assert (board["windows"], board["top_pages"], board["series"], board["dead_letters"]) == ([], [], {}, [])
    assert board["streaming"] is None


def test_the_asyncio_read_answers_as_the_blocking_one(store: FeatureStore, redis_server):
    import asyncio

    import redis.asyncio

    from clickstream.serving.feature_store import page_windows_async

    async def read() -> tuple[dict, str]:
        client = redis.asyncio.Redis.from_url(redis_server.url("reader"))
        try:
            answer = await page_windows_async(client, "/home", 3, now_ms=NOW_MS)
            try:
                await page_windows_async(client, "/never", 3, now_ms=NOW_MS)
            except NotFound as missing:
                return answer, str(missing)
            return answer, ""
        finally:
            await client.aclose()

    answer, missing = asyncio.run(read())
    assert answer == store.page_windows("/home", 3, now_ms=NOW_MS)
    assert "no counts for page '/never'" in missing
    with pytest.raises(BadParameter, match="last must be between"):
        asyncio.run(page_windows_async(None, "/home", 0))
