"""The streaming sink's Redis script on a real Redis: a micro-batch counts once, however often it is sent."""

from __future__ import annotations

import pytest
from spark_jobs import dense_hyperloglog

from clickstream import redis_layout
from clickstream.schema import window_label

pytestmark = pytest.mark.integration

W0 = 1_795_000_020_000 - 1_795_000_020_000 % 60_000
W1 = W0 + 60_000
KEY = redis_layout.commit_key("query-1")


def counts(client, *pages):
    return redis_layout.read_counts(client, pages)


def test_a_replayed_batch_changes_nothing(redis_client):
    views = [("/home", W0, 3), ("/about", W0, 1)]
    window_users = {W0: dense_hyperloglog(redis_client, "u1", "u2", "u1")}
    assert redis_layout.apply_batch(redis_client, KEY, 0, W0 - 60_000, views, window_users) == (True, 0)
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}

    # The same batch again, as Spark sends it after a crash between the Redis write and its own commit.
    assert redis_layout.apply_batch(redis_client, KEY, 0, W0 - 60_000, views, window_users) == (False, 0)
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before
    assert redis_layout.read_commit(redis_client, KEY) == redis_layout.Commit(0, W0 - 60_000)


def test_each_new_batch_adds_to_the_absolute_counts_and_the_window_summary(redis_client):
    first = {W0: dense_hyperloglog(redis_client, "u1", "u2")}
    redis_layout.apply_batch(redis_client, KEY, 0, 0, [("/home", W0, 3), ("/about", W0, 1)], first)
    second = {W0: dense_hyperloglog(redis_client, "u3", "u1"), W1: dense_hyperloglog(redis_client, "u1")}
    redis_layout.apply_batch(redis_client, KEY, 1, W0, [("/home", W0, 2), ("/home", W1, 5)], second)

    assert counts(redis_client, "/home", "/about") == {
        ("/home", window_label(W0)): 5,
        ("/home", window_label(W1)): 5,
        ("/about", window_label(W0)): 1,
    }
    # The public layout, literally.
    assert redis_client.hget("click_count:/home", window_label(W0)) == b"5"
    assert redis_layout.read_window(redis_client, window_label(W0)) == {
        "total": 6,
        "unique_users": 3,
        "top_pages": [("/home", 5), ("/about", 1)],
    }
    assert redis_layout.read_commit(redis_client, KEY) == redis_layout.Commit(1, W0)


def test_another_query_keeps_its_own_commit(redis_client):
    redis_layout.apply_batch(redis_client, KEY, 7, 0, [("/home", W0, 1)], {})
    other = redis_layout.commit_key("query-2")
    assert redis_layout.read_commit(redis_client, other) == redis_layout.Commit(None, 0)
    assert redis_layout.apply_batch(redis_client, other, 0, 0, [("/home", W0, 1)], {}) == (True, 0)
    assert counts(redis_client, "/home") == {("/home", window_label(W0)): 2}


def test_windows_past_retention_are_removed_with_the_batch_that_passes_them(redis_client):
    redis_layout.apply_batch(
        redis_client, KEY, 0, 0, [("/home", W0, 1)], {W0: dense_hyperloglog(redis_client, "u1")}, retention_ms=60_000
    )
    applied, expired = redis_layout.apply_batch(
        redis_client, KEY, 1, 0, [("/home", W1 + 60_000, 1)], {}, retention_ms=60_000
    )
    assert (applied, expired) == (True, 1)
    assert counts(redis_client, "/home") == {("/home", window_label(W1 + 60_000)): 1}
    assert not redis_client.exists(redis_layout.window_users_key(window_label(W0)))


def test_a_batch_applies_only_on_top_of_the_commit_its_writer_read(redis_client):
    redis_layout.apply_batch(redis_client, KEY, 0, 0, [("/home", W0, 1)], {}, after=None)
    redis_layout.apply_batch(redis_client, KEY, 1, 0, [("/home", W0, 2)], {}, after=0)
    before = {k: redis_client.dump(k) for k in redis_client.keys("*")}
    # Redis came back older than the writer's read (it read batch 1; Redis now says 0): nothing is written.
    redis_client.hset(KEY, "batch_id", 0)
    with pytest.raises(redis_layout.CommitMoved, match="holds batch 0, not the 1 read before writing") as moved:
        redis_layout.apply_batch(redis_client, KEY, 2, 0, [("/home", W0, 4)], {}, after=1)
    assert (moved.value.expected, moved.value.found) == (1, 0)
    assert counts(redis_client, "/home") == {("/home", window_label(W0)): 3}
    redis_client.hset(KEY, "batch_id", 1)
    assert {k: redis_client.dump(k) for k in redis_client.keys("*")} == before
    # And a commit that vanished altogether is not the one read either.
    redis_client.delete(KEY)
    with pytest.raises(redis_layout.CommitMoved) as gone:
        redis_layout.apply_batch(redis_client, KEY, 2, 0, [("/home", W0, 4)], {}, after=1)
    assert gone.value.found is None
    # A replay is still recognised first: at or below the commit, nothing happens and nothing is raised.
    redis_layout.apply_batch(redis_client, KEY, 5, 0, [], {}, after=None)
    assert redis_layout.apply_batch(redis_client, KEY, 5, 0, [("/home", W0, 9)], {}, after=4) == (False, 0)


def dead(client) -> dict[str, dict[str, int]]:
    labels = [label.decode() for label in client.zrange(redis_layout.DEAD_WINDOWS_KEY, 0, -1)]
    return {
        label: {k.decode(): int(v) for k, v in client.hgetall(redis_layout.dead_key(label)).items()} for label in labels
    }


def test_dead_letters_per_window_and_reason_count_once_under_the_batch_fence(redis_client):
    letters = {W0: {"bad_json": 2, "bad_timestamp": 1}, W1: {"bad_json": 1}}
    redis_layout.apply_batch(redis_client, KEY, 0, 0, [("/home", W0, 1)], {}, dead_letters=letters)
    redis_layout.apply_batch(redis_client, KEY, 0, 0, [("/home", W0, 1)], {}, dead_letters=letters)  # replayed
    redis_layout.apply_batch(redis_client, KEY, 1, 0, [], {}, dead_letters={W1: {"bad_json": 4}})
    assert dead(redis_client) == {
        window_label(W0): {"bad_json": 2, "bad_timestamp": 1},
        window_label(W1): {"bad_json": 5},
    }


def test_dead_letter_windows_past_retention_are_removed(redis_client):
    redis_layout.apply_batch(redis_client, KEY, 0, 0, [], {}, retention_ms=60_000, dead_letters={W0: {"bad_json": 1}})
    redis_layout.apply_batch(
        redis_client, KEY, 1, 0, [], {}, retention_ms=60_000, dead_letters={W1 + 60_000: {"too_large": 1}}
    )
    assert dead(redis_client) == {window_label(W1 + 60_000): {"too_large": 1}}


def test_the_offsets_fence_decides_whichever_query_sends_the_batch(redis_client):
    """Redis records the Kafka offsets each batch counted, per topic id; a batch from any checkpoint (another
    query id, or batch ids from an older copy) applies only from there on, and the offsets move with the counts."""
    fence = redis_layout.offsets_key("topic-id-1")
    first = redis_layout.BatchOffsets(fence, "events", {0: (0, 100), 1: (0, 50)})
    assert redis_layout.apply_batch(redis_client, KEY, 7, W0, [("/home", W0, 150)], {}, offsets=first)[0]
    assert redis_layout.read_counted_offsets(redis_client, "topic-id-1") == {0: 100, 1: 50}
    assert redis_client.hget(fence, "topic") == b"events"

    # A new query (its checkpoint lost) starts at batch 0: the batch id does not fence it, the offsets do.
    other = redis_layout.commit_key("query-2")
    assert redis_layout.read_commit(redis_client, other, fence) == redis_layout.Commit(None, W0, {0: 100, 1: 50})
    overlapping = redis_layout.BatchOffsets(fence, "events", {0: (80, 120), 1: (50, 60)})
    with pytest.raises(redis_layout.OffsetsMoved, match="partition 0 up to offset 100, past this batch's 80"):
        redis_layout.apply_batch(redis_client, other, 0, W0, [("/home", W0, 30)], {}, offsets=overlapping)
    assert counts(redis_client, "/home") == {("/home", window_label(W0)): 150}  # nothing written

    after = redis_layout.BatchOffsets(fence, "events", {0: (100, 120), 1: (50, 60)})
    assert redis_layout.apply_batch(redis_client, other, 0, W0, [("/home", W0, 30)], {}, offsets=after)[0]
    assert counts(redis_client, "/home") == {("/home", window_label(W0)): 180}
    assert redis_layout.read_counted_offsets(redis_client, "topic-id-1") == {0: 120, 1: 60}
    # The first query's commit keeps its own batch id; a lower one sent with offsets never lowers it.
    assert redis_layout.apply_batch(
        redis_client, KEY, 3, W0, [], {}, offsets=redis_layout.BatchOffsets(fence, "events", {0: (120, 120)})
    )[0]
    assert redis_layout.read_commit(redis_client, KEY).batch_id == 7


def test_the_reconciler_cannot_move_the_offsets_fence(redis_server):
    """Only the streaming job's writer may record what was counted: the reconciler's repairs cannot."""
    import redis

    reconciler = redis_server.client("reconciler")
    with pytest.raises(redis.exceptions.NoPermissionError):
        reconciler.hset(redis_layout.offsets_key("topic-id-1"), "0", 5)
    reader = redis_server.client("reader")
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.hset(redis_layout.offsets_key("topic-id-1"), "0", 5)
