"""What one micro-batch adds to Redis, judged against the watermark: pure figures from the batch's tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clickstream.schema import WINDOW_MS


@dataclass
class BatchFigures:
    """What one micro-batch adds, judged against the watermark before it (``watermark_ms``).

    A valid event whose window ended at or before the watermark is late: not counted, nor its user, but
    its time still moves the watermark on, as Spark's own would. ``users`` holds each open window's
    users as a dense Redis HyperLogLog.
    """

    watermark_ms: int
    records: int = 0
    views: dict[tuple[str, int], int] = field(default_factory=dict)
    users: dict[int, bytes] = field(default_factory=dict)
    dead: int = 0
    dead_by_window: dict[int, dict[str, int]] = field(default_factory=dict)
    late: int = 0
    newest_ms: int | None = None

    @classmethod
    def of(cls, summary: dict[str, Any], watermark_ms: int) -> BatchFigures:
        """From :func:`~clickstream.spark.transforms.batch_summary`'s figures."""
        figures = cls(
            watermark_ms, summary["records"], dead=sum(summary["invalid"].values()), newest_ms=summary["newest_ms"]
        )
        for window in summary.get("invalid_windows", ()):
            reasons = figures.dead_by_window.setdefault(window["start_ms"], {})
            for reason, n in window["reasons"].items():
                reasons[reason] = reasons.get(reason, 0) + n
        for window in summary["windows"]:
            start = window["start_ms"]
            if start + WINDOW_MS > watermark_ms:
                figures.views.update(((page, start), n) for page, n in window["views"].items())
                figures.users[start] = window["users"]
            else:
                figures.late += sum(window["views"].values())
        return figures
