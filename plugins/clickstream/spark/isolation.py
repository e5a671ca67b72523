"""Finding the records that make a micro-batch fail, so the rest of the batch can count and the stream go on.

A record that passed validation can still make a Spark job fail where it is processed (a bug in a later
expression, a library that throws on one value). Replayed from its checkpoint, such a batch fails again
every time, and nothing after it is ever counted. :func:`find_failing_records` bisects the batch's offset
ranges, running the failing job on halves, until it has the single records that fail by themselves; the
sink dead-letters those with reason ``processing_error`` and counts the rest exactly once.

Bisection runs only after a failure, and stops (the batch then fails loudly) when more records fail than
a poison record explains: a broker or executor outage makes every half fail, and must not turn a whole
batch into dead letters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

# More failing records than this in one batch is an outage or a bug, not poison.
MAX_FAILING_RECORDS = 20


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets ``first`` to ``last`` (inclusive) of one Kafka topic partition."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def halves(self) -> tuple[OffsetRange, OffsetRange]:
        middle = (self.first + self.last) // 2
        return (
            OffsetRange(self.topic, self.partition, self.first, middle),
            OffsetRange(self.topic, self.partition, middle + 1, self.last),
        )

    def condition(self) -> Column:
        """The batch's records in this range: topic, partition and offset only, so Spark filters them before
        it evaluates anything else on them."""
        return (
            (F.col("topic") == self.topic)
            & (F.col("partition") == self.partition)
            & F.col("offset").between(self.first, self.last)
        )

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] offsets {self.first}-{self.last}"


def any_of(ranges: Iterable[OffsetRange]) -> Column:
    return reduce(lambda a, b: a | b, (r.condition() for r in ranges), F.lit(False))


@dataclass(frozen=True)
class FailingRecord:
    topic: str
    partition: int
    offset: int
    error: str


class TooManyFailures(RuntimeError):
    """More records failed than isolation may dead-letter; the batch must fail instead."""


def find_failing_records(
    ranges: Iterable[OffsetRange],
    job_error: Callable[[OffsetRange], str | None],
    limit: int = MAX_FAILING_RECORDS,
) -> list[FailingRecord]:
    """The single records on which ``job_error`` reports an error, by bisecting ``ranges``.

    ``job_error(range)`` runs the batch's job on that range alone and returns its error, or None when it
    succeeds. A record counts as failing only when it fails twice alone, so a passing fault in the middle
    of a bisection does not dead-letter a good record.
    """
    pending = sorted(r for r in ranges if r.size > 0)
    failing: list[FailingRecord] = []
    while pending:
        current = pending.pop()
        error = job_error(current)
        if error is None:
            continue
        if current.size > 1:
            pending.extend(current.halves())
            continue
        if job_error(current) is None:
            log.warning("%s failed once, then succeeded: not isolated", current)
            continue
        failing.append(FailingRecord(current.topic, current.partition, current.first, error))
        if len(failing) > limit:
            raise TooManyFailures(
                f"more than {limit} records fail on their own (first: {failing[0].topic}[{failing[0].partition}] "
                f"offset {failing[0].offset}: {failing[0].error}); that is an outage or a bug, not a poison record"
            )
    return sorted(failing, key=lambda f: (f.topic, f.partition, f.offset))


_NAMES_AN_EXCEPTION = re.compile(r"^:?\s*[\w.$]*(?:Error|Exception)\b")


def short_error(exc: BaseException | str, limit: int = 500) -> str:
    """What a Spark error says went wrong: its root cause (the last "Caused by:"), else the last line that
    names an exception (a Python UDF's traceback ends with one), else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    named = [line.lstrip(": ") for line in lines if _NAMES_AN_EXCEPTION.match(line)]
    candidates = causes or named
    text = candidates[-1] if candidates else lines[0] if lines else type(exc).__name__
    return text[:limit]
