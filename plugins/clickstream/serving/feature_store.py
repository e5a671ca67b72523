"""Reading the feature store: the pipeline's Redis layout (:mod:`clickstream.redis_layout`) as answers.

Each read is one round trip (a pipeline of independent commands). Parameters are checked before Redis is
asked, and what does not exist is told apart from what is wrong: :class:`BadParameter` (a 4xx of the
caller's making) and :class:`NotFound`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from clickstream import redis_layout
from clickstream.schema import MAX_PAGE_LENGTH, WINDOW_MS, label_start_ms, window_label

MAX_WINDOWS = 1440  # a day of 1-minute windows: the most one read returns or ranks over
MAX_TOP = 100
_LABEL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00")


class BadParameter(ValueError):
    """A parameter the caller got wrong; the message says what is allowed."""


class NotFound(LookupError):
    """Nothing of that name in the feature store."""


def check_page(page: str) -> str:
    if not page or len(page) > MAX_PAGE_LENGTH:
        raise BadParameter(f"page must be 1 to {MAX_PAGE_LENGTH} characters, got {len(page)}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in page):
        raise BadParameter("page must not hold control characters")
    return page


def check_label(label: str, name: str = "window") -> int:
    """A window label's start (ms), or :class:`BadParameter` naming the form it must have."""
    if not _LABEL.fullmatch(label):
        raise BadParameter(f"{name} must be a window label like 2025-06-10T05:04:00 (UTC, whole minute), not {label!r}")
    try:
        return label_start_ms(label)
    except ValueError:
        raise BadParameter(f"{name} {label!r} is not a real date and time") from None


def check_count(value: int, name: str, most: int) -> int:
    if not 1 <= value <= most:
        raise BadParameter(f"{name} must be between 1 and {most}, got {value}")
    return value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class FeatureStore:
    """Reads over a Redis client (for the serving API, the ``redis_reader`` user: read only)."""

    client: Any

    def page_windows(self, page: str, last: int, now_ms: int | None = None) -> dict[str, Any]:
        """A page's counts in the ``last`` 1-minute windows up to now, oldest first (0 where it had none):
        :func:`page_windows_answer`."""
        labels, fields = page_window_labels(page, last, now_ms)
        pipe = self.client.pipeline(transaction=False)
        pipe.sismember(redis_layout.PAGES_KEY, page)
        pipe.hmget(redis_layout.count_key(page), fields)
        return page_windows_answer(page, labels, *pipe.execute())

    def window(self, label: str) -> dict[str, Any]:
        """A window's total, unique users (approximate) and top pages."""
        check_label(label)
        summary = {_text(k): _text(v) for k, v in self.client.hgetall(redis_layout.window_key(label)).items()}
        if not summary:
            raise NotFound(f"no window {label}: nothing was counted in it (or retention removed it)")
        return {
            "window": label,
            "total": int(summary.get("total", 0)),
            "unique_users": int(summary.get("unique_users", 0)),
            "top_pages": [{"page": p, "count": int(c)} for p, c in json.loads(summary.get("top_pages", "[]"))],
        }

    def top_pages(self, start: str, end: str, limit: int) -> dict[str, Any]:
        """The pages with the most views over the windows from ``start`` to ``end`` (both included)."""
        start_ms, end_ms = check_label(start, "from"), check_label(end, "to")
        check_count(limit, "limit", MAX_TOP)
        if end_ms < start_ms:
            raise BadParameter(f"to ({end}) is before from ({start})")
        count = (end_ms - start_ms) // WINDOW_MS + 1
        if count > MAX_WINDOWS:
            raise BadParameter(f"from..to spans {count} windows; at most {MAX_WINDOWS}")
        keys = [redis_layout.window_pages_key(window_label(start_ms + i * WINDOW_MS)) for i in range(count)]
        ranked = self.client.zunion(keys, withscores=True)  # one round trip; absent windows count as empty
        ranked.sort(key=lambda item: (-item[1], _text(item[0])))
        pages = [{"page": _text(p), "count": int(c)} for p, c in ranked[:limit]]
        return {"from": start, "to": end, "windows": count, "top_pages": pages}

    def streaming_state(self, query: str = redis_layout.COUNTS_QUERY, now_ms: int | None = None) -> dict[str, Any]:
        """The streaming query's latest progress as its listener and sink wrote it: state, rates, watermark,
        newest window, records behind Kafka's end, the last batch's age, and its supervisor's restarts."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(redis_layout.progress_key(query))
        pipe.hgetall(redis_layout.SUPERVISOR_KEY)
        progress, supervisor = pipe.execute()
        state = _streaming_state(query, _texts(progress), _texts(supervisor), now_ms)
        if state is None:
            raise NotFound(f"the streaming query {query!r} has not reported yet")
        return state

    def dead_letters(self, last: int) -> dict[str, Any]:
        """Dead letters by reason in the ``last`` windows that had any (the minute they reached Kafka)."""
        check_count(last, "last", MAX_WINDOWS)
        labels = [_text(label) for label in self.client.zrevrange(redis_layout.DEAD_WINDOWS_KEY, 0, last - 1)][::-1]
        pipe = self.client.pipeline(transaction=False)
        for label in labels:
            pipe.hgetall(redis_layout.dead_key(label))
        return _dead_letters(labels, pipe.execute() if labels else [])

    def dashboard(self, windows: int, top: int = 10, now_ms: int | None = None) -> dict[str, Any]:
        """What the Airflow UI's Clickstream view shows, in three round trips: the newest ``windows`` windows
        held (totals, users), the top pages over them with their counts per window, dead letters by reason
        over as many dead-letter windows, and the streaming state (None before it reports)."""
        check_count(windows, "windows", MAX_WINDOWS)
        check_count(top, "top", MAX_TOP)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrange(redis_layout.WINDOWS_KEY, 0, windows - 1)
        pipe.zrevrange(redis_layout.DEAD_WINDOWS_KEY, 0, windows - 1)
        pipe.hgetall(redis_layout.progress_key(redis_layout.COUNTS_QUERY))
        pipe.hgetall(redis_layout.SUPERVISOR_KEY)
        newest, newest_dead, progress, supervisor = pipe.execute()
        labels = [_text(label) for label in newest][::-1]
        dead_labels = [_text(label) for label in newest_dead][::-1]
        pipe = self.client.pipeline(transaction=False)
        for label in labels:
            pipe.hgetall(redis_layout.window_key(label))
        for label in dead_labels:
            pipe.hgetall(redis_layout.dead_key(label))
        if labels:
            pipe.zunion([redis_layout.window_pages_key(label) for label in labels], withscores=True)
        answers = pipe.execute()
        summaries, dead = answers[: len(labels)], answers[len(labels) : len(labels) + len(dead_labels)]
        ranked = sorted(answers[-1], key=lambda item: (-item[1], _text(item[0])))[:top] if labels else []
        top_pages = [{"page": _text(page), "count": int(count)} for page, count in ranked]
        series: dict[str, list[int]] = {}
        if top_pages:
            pipe = self.client.pipeline(transaction=False)
            for label in labels:
                pipe.zmscore(redis_layout.window_pages_key(label), [p["page"] for p in top_pages])
            per_window = pipe.execute()
            for i, entry in enumerate(top_pages):
                series[entry["page"]] = [int(scores[i] or 0) for scores in per_window]
        letters = _dead_letters(dead_labels, dead)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return {
            "windows": [
                {
                    "window": label,
                    "total": int(_texts(summary).get("total", 0)),
                    "unique_users": int(_texts(summary).get("unique_users", 0)),
                }
                for label, summary in zip(labels, summaries, strict=True)
            ],
            "top_pages": top_pages,
            "series": series,
            "dead_letters": letters["windows"],
            "dead_letter_totals": letters["totals"],
            "streaming": _streaming_state(redis_layout.COUNTS_QUERY, _texts(progress), _texts(supervisor), now_ms),
            "generated_ms": now_ms,
        }


async def page_windows_async(client: Any, page: str, last: int, now_ms: int | None = None) -> dict[str, Any]:
    """:meth:`FeatureStore.page_windows` over a ``redis.asyncio`` client: the serving API's hot read, answered
    on the api-server's event loop without a hop to its thread pool."""
    labels, fields = page_window_labels(page, last, now_ms)
    pipe = client.pipeline(transaction=False)
    pipe.sismember(redis_layout.PAGES_KEY, page)
    pipe.hmget(redis_layout.count_key(page), fields)
    return page_windows_answer(page, labels, *await pipe.execute())


def page_window_labels(page: str, last: int, now_ms: int | None) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """The labels of the ``last`` windows up to ``now_ms``, oldest first, once the parameters are checked;
    also as the hash fields to ask Redis for."""
    check_page(page)
    check_count(last, "last", MAX_WINDOWS)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _window_labels(now_ms - now_ms % WINDOW_MS, last)


@lru_cache(maxsize=16)
def _window_labels(newest_ms: int, last: int) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """Every read in the same minute asks for the same windows: their labels, and the labels encoded for
    Redis, are made once per minute and ``last`` instead of on each of the serving API's hot reads."""
    labels = tuple(window_label(newest_ms - i * WINDOW_MS) for i in range(last - 1, -1, -1))
    return labels, tuple(label.encode() for label in labels)


def page_windows_answer(page: str, labels: tuple[str, ...], known: Any, counts: list[Any]) -> dict[str, Any]:
    """The counts as one array, oldest first, one per minute from window ``from`` to window ``to``: the
    feature vector a model server reads, columnar as feature servers answer. 60 windows are 0.3 kB of JSON,
    under the api-server's 1 kB gzip threshold; as 60 labelled objects they were 2.7 kB, and compressing
    and encoding them cost the api-server more than the whole Redis read."""
    if not known:
        raise NotFound(f"no counts for page {page!r}: the pipeline has not seen it (or retention removed it)")
    values = [int(count) if count else 0 for count in counts]
    return {"page": page, "from": labels[0], "to": labels[-1], "counts": values, "total": sum(values)}


def _texts(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _dead_letters(labels: list[str], hashes: list[dict[Any, Any]]) -> dict[str, Any]:
    windows, totals = [], {}
    for label, raw in zip(labels, hashes, strict=True):
        reasons = {reason: int(n) for reason, n in sorted(_texts(raw).items())}
        for reason, n in reasons.items():
            totals[reason] = totals.get(reason, 0) + n
        windows.append({"window": label, "reasons": reasons, "total": sum(reasons.values())})
    return {"windows": windows, "totals": dict(sorted(totals.items()))}


def _streaming_state(
    query: str, progress: dict[str, str], supervisor: dict[str, str], now_ms: int | None
) -> dict[str, Any] | None:
    if not progress:
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    updated = int(progress.get("updated_ms") or progress.get("started_ms") or 0)

    def number(name: str) -> float | None:
        value = progress.get(name)
        return float(value) if value not in (None, "") else None

    return {
        "query": query,
        "state": progress.get("state", "unknown"),
        "batch_id": int(progress["batch_id"]) if progress.get("batch_id") else None,
        "input_rows_per_s": number("input_rows_per_s"),
        "processed_rows_per_s": number("processed_rows_per_s"),
        "last_batch_age_s": round((now_ms - updated) / 1000, 1) if updated else None,
        "watermark": progress.get("watermark"),
        "newest_window": progress.get("newest_window"),
        "offsets_behind_latest": number("offsets_behind_latest"),
        "restarts": int(supervisor.get("restarts") or 0),
        "last_restart_reason": supervisor.get("last_restart_reason"),
        "error": progress.get("error"),
    }
