"""Comparing a recount of windows from Kafka with what Redis holds: the batch reconciler's rules."""

from __future__ import annotations

from typing import Any

from clickstream.schema import window_label

MAX_LISTED_DIFFERENCES = 200


def reconcile(
    recount: dict[tuple[str, int], int], stored: dict[tuple[str, str], int]
) -> tuple[dict[str, Any], list[tuple[str, int, int]]]:
    """Compare Kafka's recount with Redis; returns the comparison and the cells a repair would write.

    Pure, so that the rules are unit-tested without Spark or Redis.
    """
    differences, repairs = [], []
    matching = short = missing = over = late = 0
    for (page, start), kafka_count in sorted(recount.items()):
        redis_count = stored.get((page, window_label(start)))
        if redis_count == kafka_count:
            matching += 1
            continue
        kind = "missing" if redis_count is None else "short" if redis_count < kafka_count else "over"
        if kind == "over":
            over += 1
        else:
            missing += kind == "missing"
            short += kind == "short"
            late += kafka_count - (redis_count or 0)
            repairs.append((page, start, kafka_count))
        if len(differences) < MAX_LISTED_DIFFERENCES:
            differences.append(
                {"page": page, "window": window_label(start), "kafka": kafka_count, "redis": redis_count, "kind": kind}
            )
    comparison = {
        "cells_compared": len(recount),
        "cells_matching": matching,
        "cells_missing_in_redis": missing,
        "cells_short_in_redis": short,
        "cells_over_in_redis": over,
        "events_missing_from_redis": late,
        "differences": differences,
    }
    return comparison, repairs
