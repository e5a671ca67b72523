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
        """A page's counts in the ``last`` 1-minute windows up to now, oldest first (0 where it had none)."""
        check_page(page)
        check_count(last, "last", MAX_WINDOWS)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        newest = now_ms - now_ms % WINDOW_MS
        labels = [window_label(newest - i * WINDOW_MS) for i in range(last - 1, -1, -1)]
        pipe = self.client.pipeline(transaction=False)
        pipe.sismember(redis_layout.PAGES_KEY, page)
        pipe.hmget(redis_layout.count_key(page), labels)
        known, counts = pipe.execute()
        if not known:
            raise NotFound(f"no counts for page {page!r}: the pipeline has not seen it (or retention removed it)")
        windows = [{"window": label, "count": int(count or 0)} for label, count in zip(labels, counts, strict=True)]
        return {"page": page, "windows": windows, "total": sum(w["count"] for w in windows)}

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
        newest window, records behind Kafka's end, and the last batch's age."""
        progress = {_text(k): _text(v) for k, v in self.client.hgetall(redis_layout.progress_key(query)).items()}
        if not progress:
            raise NotFound(f"the streaming query {query!r} has not reported yet")
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
            "error": progress.get("error"),
        }
