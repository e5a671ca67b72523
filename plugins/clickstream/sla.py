"""The Redis SLA of a producer burst: fresh enough, and every event counted once.

Shared by the sensor (its synchronous poke) and its trigger (the deferred wait), and pure, so that each
rule is unit-tested without Redis. Inputs are the burst's ground-truth digest (its XCom), the cells
Redis holds for the burst's pages, and optionally the batch reconciler's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from clickstream.schema import WINDOW_MS, label_start_ms, window_label

MAX_LISTED_PROBLEMS = 25


@dataclass
class SlaResult:
    ok: bool
    problems: list[str] = field(default_factory=list)
    pages_checked: int = 0
    events_expected: int = 0
    events_in_redis: int = 0
    allowed_shortfall: int = 0
    newest_window: str | None = None
    newest_window_age_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = [f"- {p}" for p in shown] + ([f"- ... and {more} more"] if more > 0 else [])
        return "\n".join(lines)


def allowed_shortfall(report: Mapping[str, Any] | None) -> int:
    """Events Redis may lack: what the reconciler found missing and did not repair (late or lost)."""
    if not report or report.get("repair_requested"):
        return 0  # repaired (or never checked): Redis must hold every valid event
    return int(report.get("events_missing_from_redis", 0))


def check_burst(
    *,
    truth: Mapping[str, Any],
    cells: Mapping[tuple[str, str], int],
    now_ms: int,
    freshness_s: float,
    exact: bool,
    report: Mapping[str, Any] | None = None,
) -> SlaResult:
    """Check Redis against a burst's ground truth (``ProduceClickstreamBurstOperator``'s ``ground_truth``).

    - fresh: the newest window Redis holds for the burst's pages is at most ``freshness_s`` old, and no
      page stops short of the newest window the burst gave it;
    - complete: per page, Redis's total over the burst's windows is at least what was sent, less what the
      reconciler reported missing and left unrepaired (late events when not repairing);
    - ``exact``: no page holds more than was sent (a double count). Leave it off when other traffic
      shares the topic: its events land in the same windows.
    """
    page_totals: Mapping[str, int] = truth.get("page_totals", {})
    first, last = truth.get("first_window_ms"), truth.get("last_window_ms")
    result = SlaResult(ok=True, pages_checked=len(page_totals), allowed_shortfall=allowed_shortfall(report))
    if not page_totals or first is None or last is None:
        result.problems.append("the burst digest names no pages or windows: pass the burst task's XCom")
        result.ok = False
        return result
    in_range = {window_label(w) for w in range(int(first), int(last) + 1, WINDOW_MS)}
    newest_by_page: dict[str, str] = {}
    totals: dict[str, int] = {}
    for (page, label), count in cells.items():
        if page not in page_totals:
            continue
        if label > newest_by_page.get(page, ""):
            newest_by_page[page] = label
        if label in in_range:
            totals[page] = totals.get(page, 0) + count

    if not newest_by_page:
        result.problems.append(f"Redis holds no windows for any of the burst's {len(page_totals)} pages")
    else:
        newest = max(newest_by_page.values())
        result.newest_window = newest
        result.newest_window_age_s = round((now_ms - label_start_ms(newest)) / 1000, 1)
        if result.newest_window_age_s > freshness_s:
            result.problems.append(
                f"stale: the newest window in Redis, {newest}, is {result.newest_window_age_s:g}s old "
                f"(freshness SLA {freshness_s:g}s)"
            )
    for page, expected_newest in sorted(truth.get("page_newest_window_ms", {}).items()):
        held = newest_by_page.get(page)
        if held is None or label_start_ms(held) < int(expected_newest):
            result.problems.append(
                f"stale page {page}: newest window in Redis {held or 'none'}, "
                f"the burst reached {window_label(int(expected_newest))}"
            )

    shortfalls: list[str] = []
    short_events = 0
    for page, expected in sorted(page_totals.items()):
        got = totals.get(page, 0)
        result.events_expected += int(expected)
        result.events_in_redis += got
        if got < expected:
            short_events += expected - got
            windows = sorted(label for (p, label) in cells if p == page and label in in_range)
            shortfalls.append(
                f"wrong count for page {page}: Redis holds {got} over windows {windows or 'none'}, "
                f"the burst sent {expected} (short by {expected - got})"
            )
        elif exact and got > expected:
            result.problems.append(
                f"wrong count for page {page}: Redis holds {got}, more than the {expected} sent "
                "(counted twice, or other traffic in these windows: then set exact_totals off)"
            )
    if short_events > result.allowed_shortfall:
        result.problems.extend(shortfalls)
    result.ok = not result.problems
    return result
