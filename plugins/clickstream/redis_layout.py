"""Where the pipeline keeps its state in Redis: every key, and the scripts that write them.

The public layout (users read it directly): one hash per page, one field per 1-minute window, holding the
absolute count::

    HSET click_count:/home 2025-06-10T05:04:00 35

Around it, for dashboards and supervisors (all under ``clickstream:``):

- ``clickstream:window:<label>``: hash with ``total``, ``unique_users`` (approximate) and ``top_pages``
  (JSON ``[[page, count], ...]``), so a dashboard reads a window in one call;
- ``clickstream:window:<label>:pages``: sorted set page -> count (ranks the top pages);
- ``clickstream:window:<label>:users``: HyperLogLog of the window's users;
- ``clickstream:windows``: sorted set label -> window start (ms), for retention;
- ``clickstream:pages``: set of pages seen, for retention;
- ``clickstream:dead:<label>``: hash reason -> records dead-lettered in that window (the minute they reached
  Kafka: an invalid record may have no event time of its own), and ``clickstream:dead:windows``, a sorted
  set label -> window start (ms), for reading and retention;
- ``clickstream:progress:<query>``: hash with the streaming query's latest progress;
- ``clickstream:supervisor:streaming``: hash with the supervising task's restarts of the job (``restarts``,
  ``last_restart_ms``, ``last_restart_reason``, ``run_id``), reset when a task launches it afresh;
- ``clickstream:commit:<query id>``: hash with the last micro-batch applied and the watermark after it;
- ``clickstream:offsets:<topic id>``: hash partition -> the Kafka offset counting has reached (the next
  one to count), per incarnation of a topic (Kafka's topic id, not its name), with ``topic`` (its name) and
  ``watermark_ms``. Written by the same script as the counts, so it is what Redis has counted: a job
  without a checkpoint starts there, and a batch skips what it holds. Nothing else moves it;
- ``clickstream:control:streaming``: hash a user sets to ask the supervised streaming job to stop.

The streaming job adds each micro-batch's views to the counts in one atomic script that also records
the batch id, so a batch Spark replays after a crash changes nothing; the reconciler's repairs set
absolute values (HSET, ZADD). Each write is one atomic round trip, a Lua script; the scripts compute
key names in Lua, so they need a single Redis, not a Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clickstream.schema import window_label

COUNT_PREFIX = "click_count:"
PREFIX = "clickstream:"
PAGES_KEY = f"{PREFIX}pages"
WINDOWS_KEY = f"{PREFIX}windows"
TOP_PAGES = 10


def count_key(page: str) -> str:
    return f"{COUNT_PREFIX}{page}"


def window_key(label: str) -> str:
    return f"{PREFIX}window:{label}"


def window_pages_key(label: str) -> str:
    return f"{PREFIX}window:{label}:pages"


def window_users_key(label: str) -> str:
    return f"{PREFIX}window:{label}:users"


def progress_key(query: str) -> str:
    return f"{PREFIX}progress:{query}"


SUPERVISOR_KEY = f"{PREFIX}supervisor:streaming"
MAX_REASON_CHARS = 500


def record_launch(client: Any, run_id: str) -> None:
    """A task launched the streaming job afresh: no restarts yet."""
    client.delete(SUPERVISOR_KEY)
    client.hset(SUPERVISOR_KEY, mapping={"restarts": 0, "run_id": run_id, "launched_ms": int(time.time() * 1000)})


def record_restart(client: Any, reason: str) -> None:
    """The supervising task restarted the job: one more restart, and why (shortened)."""
    client.hincrby(SUPERVISOR_KEY, "restarts", 1)
    client.hset(
        SUPERVISOR_KEY,
        mapping={"last_restart_ms": int(time.time() * 1000), "last_restart_reason": reason[:MAX_REASON_CHARS]},
    )


DEAD_WINDOWS_KEY = f"{PREFIX}dead:windows"


def dead_key(label: str) -> str:
    return f"{PREFIX}dead:{label}"


# The streaming application's query, by the name its progress is stored under.
COUNTS_QUERY = "clickstream_counts"
STREAMING_QUERIES = (COUNTS_QUERY,)
CONTROL_KEY = f"{PREFIX}control:streaming"


def request_stop(client: Any, reason: str = "") -> None:
    """Ask the supervised streaming job to stop cleanly (its Airflow task then succeeds)."""
    client.hset(CONTROL_KEY, mapping={"command": "stop", "requested_ms": int(time.time() * 1000), "reason": reason})


# What every cell-writing script ends with: each touched window's summary (total, top pages), then
# retention. Expects locals top_n, retention and touched (label -> true); returns the windows removed.
_SUMMARY_AND_RETENTION_LUA = """
for label, _ in pairs(touched) do
  local ranked = redis.call('ZREVRANGE', 'clickstream:window:' .. label .. ':pages', 0, -1, 'WITHSCORES')
  local total, top = 0, {}
  for j = 1, #ranked, 2 do
    local n = tonumber(ranked[j + 1])
    total = total + n
    if #top < top_n then top[#top + 1] = {ranked[j], n} end
  end
  redis.call('HSET', 'clickstream:window:' .. label, 'total', total, 'top_pages', cjson.encode(top))
end
local removed = 0
local newest = redis.call('ZREVRANGE', 'clickstream:windows', 0, 0, 'WITHSCORES')
if retention > 0 and #newest > 0 then
  local cutoff = tonumber(newest[2]) - retention
  local old = redis.call('ZRANGEBYSCORE', 'clickstream:windows', '-inf', '(' .. cutoff)
  if #old > 0 then
    local pages = redis.call('SMEMBERS', 'clickstream:pages')
    for _, page in ipairs(pages) do
      redis.call('HDEL', 'click_count:' .. page, unpack(old))
    end
    for _, label in ipairs(old) do
      redis.call('DEL', 'clickstream:window:' .. label, 'clickstream:window:' .. label .. ':pages',
                 'clickstream:window:' .. label .. ':users')
      redis.call('ZREM', 'clickstream:windows', label)
      removed = removed + 1
    end
  end
end
return removed
"""

# ARGV: top_n, retention_ms (windows starting that long before the newest are removed; 0 keeps all),
#       then (page, label, window_start_ms, count) repeated.
APPLY_COUNTS_LUA = (
    """
local top_n = tonumber(ARGV[1])
local retention = tonumber(ARGV[2])
local touched = {}
for i = 3, #ARGV, 4 do
  local page, label, start, count = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('HSET', 'click_count:' .. page, label, count)
  redis.call('SADD', 'clickstream:pages', page)
  redis.call('ZADD', 'clickstream:windows', start, label)
  redis.call('ZADD', 'clickstream:window:' .. label .. ':pages', count, page)
  touched[label] = true
end
"""
    + _SUMMARY_AND_RETENTION_LUA
)

# One streaming micro-batch, applied at most once. Two fences, in one script with the counts:
# - with an offsets hash (ARGV[9]), the Kafka offsets: the batch counts partition p's offsets from..to-1, and
#   applies only if Redis has counted no further than ``from`` in any partition (else {-2, partition, held});
#   then each partition's offset becomes ``to``. What the hash holds decides, whichever checkpoint planned
#   the batch: the caller leaves out the records below it.
# - without one, the batch id: the commit hash (ARGV[1]) remembers the last batch id applied, and a batch id
#   at or below it changes nothing.
# The commit hash also keeps the watermark after the batch, and a batch applies only on top of the commit
# its caller saw (ARGV[6]: that batch id, '' for none, '*' for any): Redis may have come back older between
# the caller's read and this write, and then nothing is written.
# The batch's dead letters per (window, reason) are added under the same fence, and their windows kept for
# as long as the counts' (retention by the newest dead-letter window).
# ARGV: commit_key, batch_id, watermark_ms, top_n, retention_ms, expected last batch id, cell count,
#       dead-letter entry count, offsets key ('' for none), topic name, partition count, then (partition,
#       from, to) per partition (from -1: unknown, not checked), then (page, label, window_start_ms, views)
#       per cell, then (label, window_start_ms, reason, records) per dead-letter entry, then (label,
#       window_start_ms, users as a dense HyperLogLog) per window, merged into the window's with PFMERGE.
# Returns {1, windows removed} when applied, {0, 0} when already applied, {-1, last batch id or -1} when the
# commit is not the one expected, {-2, partition, offset held} when Redis has counted past the batch's start.
APPLY_BATCH_LUA = """
local commit_key, batch_id = ARGV[1], tonumber(ARGV[2])
local offsets_key, parts = ARGV[9], tonumber(ARGV[11])
local last = redis.call('HGET', commit_key, 'batch_id')
if offsets_key == '' and last and tonumber(last) >= batch_id then return {0, 0} end
if ARGV[6] ~= '*' and (last or '') ~= ARGV[6] then return {-1, last and tonumber(last) or -1} end
local i = 12
if offsets_key ~= '' then
  for j = i, i + 3 * parts - 1, 3 do
    local held, from = redis.call('HGET', offsets_key, ARGV[j]), tonumber(ARGV[j + 1])
    if held and from >= 0 and tonumber(held) > from then return {-2, tonumber(ARGV[j]), tonumber(held)} end
  end
  for j = i, i + 3 * parts - 1, 3 do
    redis.call('HSET', offsets_key, ARGV[j], ARGV[j + 2])
  end
  redis.call('HSET', offsets_key, 'topic', ARGV[10], 'watermark_ms', ARGV[3])
end
i = i + 3 * parts
if last and tonumber(last) > batch_id then batch_id = tonumber(last) end
local top_n = tonumber(ARGV[4])
local retention = tonumber(ARGV[5])
local touched = {}
for _ = 1, tonumber(ARGV[7]) do
  local page, label, start = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local count = redis.call('HINCRBY', 'click_count:' .. page, label, ARGV[i + 3])
  redis.call('SADD', 'clickstream:pages', page)
  redis.call('ZADD', 'clickstream:windows', start, label)
  redis.call('ZADD', 'clickstream:window:' .. label .. ':pages', count, page)
  touched[label] = true
  i = i + 4
end
for _ = 1, tonumber(ARGV[8]) do
  redis.call('HINCRBY', 'clickstream:dead:' .. ARGV[i], ARGV[i + 2], ARGV[i + 3])
  redis.call('ZADD', 'clickstream:dead:windows', ARGV[i + 1], ARGV[i])
  i = i + 4
end
local dead_newest = redis.call('ZREVRANGE', 'clickstream:dead:windows', 0, 0, 'WITHSCORES')
if retention > 0 and #dead_newest > 0 then
  local cutoff = tonumber(dead_newest[2]) - retention
  local old = redis.call('ZRANGEBYSCORE', 'clickstream:dead:windows', '-inf', '(' .. cutoff)
  for _, label in ipairs(old) do
    redis.call('DEL', 'clickstream:dead:' .. label)
    redis.call('ZREM', 'clickstream:dead:windows', label)
  end
end
while i <= #ARGV do
  local label, start = ARGV[i], ARGV[i + 1]
  local key = 'clickstream:window:' .. label .. ':users'
  redis.call('SET', 'clickstream:scratch:users', ARGV[i + 2])
  redis.call('PFMERGE', key, 'clickstream:scratch:users')
  redis.call('DEL', 'clickstream:scratch:users')
  redis.call('ZADD', 'clickstream:windows', 'NX', start, label)
  redis.call('HSET', 'clickstream:window:' .. label, 'unique_users', redis.call('PFCOUNT', key))
  i = i + 3
end
redis.call('HSET', commit_key, 'batch_id', batch_id, 'watermark_ms', ARGV[3])
""" + _SUMMARY_AND_RETENTION_LUA.replace("return removed", "return {1, removed}")


def apply_window_counts(client: Any, rows: Iterable[tuple[str, int, int]], retention_ms: int | None = None) -> int:
    """Write absolute ``(page, window_start_ms, count)`` cells in one atomic round trip; returns windows expired.

    Windows starting more than ``retention_ms`` before the newest known window are removed: Redis 7 has no
    per-field TTL on hashes, so expiry is done here, by event time, which keeps replays deterministic.
    """
    argv: list[Any] = []
    for page, start_ms, count in rows:
        argv += [page, window_label(start_ms), start_ms, count]
    if not argv:
        return 0
    return int(client.eval(APPLY_COUNTS_LUA, 0, TOP_PAGES, retention_ms or 0, *argv))


def commit_key(query_id: str) -> str:
    return f"{PREFIX}commit:{query_id}"


def offsets_key(topic_id: str) -> str:
    return f"{PREFIX}offsets:{topic_id}"


@dataclass(frozen=True)
class Commit:
    """What a streaming query has applied to Redis: its last batch id (None before the first) and watermark,
    and, when read with its topic's offsets hash, the offset counted up to per partition."""

    batch_id: int | None = None
    watermark_ms: int = 0
    offsets: dict[int, int] = field(default_factory=dict)


def read_commit(client: Any, key: str, offsets_key: str | None = None) -> Commit:
    """The commit hash and, with ``offsets_key``, the topic's counted offsets, in one round trip. A query
    with no commit yet takes the watermark counting reached on the topic, so a new checkpoint judges
    lateness as the old one did."""
    pipe = client.pipeline(transaction=False)
    pipe.hmget(key, "batch_id", "watermark_ms")
    if offsets_key:
        pipe.hgetall(offsets_key)
    replies = pipe.execute()
    raw = replies[0]
    fence = replies[1] if offsets_key else {}
    offsets = counted_offsets(fence)
    watermark = raw[1] if raw[0] is not None else fence.get(b"watermark_ms", raw[1])
    return Commit(None if raw[0] is None else int(raw[0]), int(watermark or 0), offsets)


def counted_offsets(fields: dict[Any, Any]) -> dict[int, int]:
    """``{partition: offset}`` of an offsets hash's fields (its ``topic`` and ``watermark_ms`` left out)."""
    out = {}
    for name, value in fields.items():
        name = name.decode() if isinstance(name, bytes) else str(name)
        if name.isdigit():
            out[int(name)] = int(value)
    return out


def read_counted_offsets(client: Any, topic_id: str) -> dict[int, int]:
    """Where counting has reached in each partition of the topic with this id (empty: nothing counted)."""
    return counted_offsets(client.hgetall(offsets_key(topic_id)))


@dataclass(frozen=True)
class BatchOffsets:
    """The Kafka offsets one batch counts: partition -> (from, to), offsets from..to-1 (from -1: unknown)."""

    key: str  # offsets_key(topic id)
    topic: str
    ranges: dict[int, tuple[int, int]]


class OffsetsMoved(RuntimeError):
    """Redis has counted a partition past where the batch starts: another writer applied those offsets."""

    def __init__(self, key: str, partition: int, held: int, start: int) -> None:
        super().__init__(f"{key} has counted partition {partition} up to offset {held}, past this batch's {start}")
        self.partition, self.held, self.start = partition, held, start


class CommitMoved(RuntimeError):
    """The commit hash no longer holds the batch id its writer read: Redis came back older (or newer)."""

    def __init__(self, key: str, expected: int | None, found: int | None) -> None:
        super().__init__(f"{key} holds batch {found}, not the {expected} read before writing")
        self.expected, self.found = expected, found


ANY_COMMIT = object()  # apply_batch's ``after``: apply whatever the commit holds (below the batch id)


def apply_batch(
    client: Any,
    key: str,
    batch_id: int,
    watermark_ms: int,
    views: Iterable[tuple[str, int, int]],
    users_by_window: dict[int, bytes],
    retention_ms: int | None = None,
    after: int | object | None = ANY_COMMIT,
    dead_letters: dict[int, dict[str, int]] | None = None,
    offsets: BatchOffsets | None = None,
) -> tuple[bool, int]:
    """Add one micro-batch's ``(page, window_start_ms, views)``, users and dead letters (``{window_start_ms:
    {reason: records}}``), at most once per ``batch_id``.

    One atomic script: when the commit hash ``key`` already holds this batch id or a later one (Spark
    replays a batch after a crash), nothing changes. Otherwise the counts rise by the batch's views, each
    window's users (a HyperLogLog in Redis's dense encoding, as the Spark tally builds it) merge into the
    window's, and the batch id and the watermark after it are recorded with them. Returns (applied,
    windows expired).

    With ``after`` (the batch id the caller read from the commit, None for none), the batch applies only on
    top of that commit, checked in the same script: if Redis came back from an older copy since the read,
    :class:`CommitMoved` is raised and nothing is written, so the caller can recount what Redis lost first.

    With ``offsets``, the Kafka offsets fence replaces the batch-id one: the batch applies only if Redis has
    counted no partition past the batch's start (else :class:`OffsetsMoved`), and records each partition's
    end with the counts.
    """
    cells: list[Any] = []
    for page, start_ms, n in views:
        cells += [page, window_label(start_ms), start_ms, n]
    expected = "*" if after is ANY_COMMIT else "" if after is None else str(after)
    dead: list[Any] = []
    for start_ms, reasons in (dead_letters or {}).items():
        for reason, n in reasons.items():
            dead += [window_label(start_ms), start_ms, reason, n]
    argv: list[Any] = [key, batch_id, watermark_ms, TOP_PAGES, retention_ms or 0, expected, len(cells) // 4]
    argv += [len(dead) // 4]
    if offsets is None:
        argv += ["", "", 0]
    else:
        argv += [offsets.key, offsets.topic, len(offsets.ranges)]
        for partition, (start, end) in sorted(offsets.ranges.items()):
            argv += [partition, start, end]
    argv += [*cells, *dead]
    for start_ms, users in users_by_window.items():
        argv += [window_label(start_ms), start_ms, users]
    reply = [int(n) for n in client.eval(APPLY_BATCH_LUA, 0, *argv)]
    if reply[0] == -2 and offsets is not None:
        raise OffsetsMoved(offsets.key, reply[1], reply[2], offsets.ranges[reply[1]][0])
    if reply[0] == -1:
        read = None if after is None else int(after)  # type: ignore[call-overload]
        raise CommitMoved(key, read, None if reply[1] < 0 else reply[1])
    return bool(reply[0]), reply[1]


def read_window(client: Any, label: str) -> dict[str, Any]:
    """A window as a dashboard sees it (one HGETALL)."""
    raw = {k.decode(): v.decode() for k, v in client.hgetall(window_key(label)).items()}
    return {
        "total": int(raw.get("total", 0)),
        "unique_users": int(raw.get("unique_users", 0)),
        "top_pages": [tuple(p) for p in json.loads(raw.get("top_pages", "[]"))],
    }


def read_counts(client: Any, pages: Iterable[str]) -> dict[tuple[str, str], int]:
    """``{(page, window_label): count}`` for ``pages``, in one pipelined round trip."""
    pages = list(pages)
    pipe = client.pipeline(transaction=False)
    for page in pages:
        pipe.hgetall(count_key(page))
    return cells_from_replies(pages, pipe.execute())


def cells_from_replies(pages: Iterable[str], replies: Iterable[Any]) -> dict[tuple[str, str], int]:
    """``{(page, window_label): count}`` from the HGETALL replies of ``click_count:<page>``, in page order."""
    out: dict[tuple[str, str], int] = {}
    for page, fields in zip(pages, replies, strict=True):
        for label, count in fields.items():
            out[(page, label.decode() if isinstance(label, bytes) else label)] = int(count)
    return out
