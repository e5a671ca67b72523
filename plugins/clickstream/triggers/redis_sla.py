"""Waiting, in the triggerer, until Redis meets a burst's SLA or the wait runs out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from clickstream.redis_layout import cells_from_replies, count_key
from clickstream.sla import SlaResult, check_burst


async def read_burst_cells(client: Any, pages: list[str]) -> dict[tuple[str, str], int]:
    """The burst's pages' cells, in one pipelined round trip on an asyncio client."""
    pipe = client.pipeline(transaction=False)
    for page in pages:
        pipe.hgetall(count_key(page))
    return cells_from_replies(pages, await pipe.execute())


class RedisSlaTrigger(BaseTrigger):
    """Polls Redis; fires ``{"status": "ok"}`` once the SLA holds, or ``{"status": "failed"}`` at the deadline.

    Both events carry the last :class:`~clickstream.sla.SlaResult`, whose problems name the stale or
    wrong pages and windows.

    :param truth: The burst's ground-truth digest (``ground_truth`` of the producer's XCom). Required.
    :param report: The reconciler's report, whose unrepaired missing events may be missing from Redis;
        ``None`` when it did not run. Required.
    :param freshness_s: How old, in seconds, the newest window may be. Required.
    :param exact: Whether a page holding more than was sent fails the SLA. Required.
    :param deadline_ms: When (epoch ms) to stop waiting and fire ``{"status": "failed"}``. Required.
    :param redis_conn_id: The Airflow Redis connection to read the counts from. Default: ``"redis_default"``.
    :param poll_interval_s: How often, in seconds, to read Redis. Default: ``5.0``.
    """

    def __init__(
        self,
        truth: dict[str, Any],
        report: dict[str, Any] | None,
        freshness_s: float,
        exact: bool,
        deadline_ms: int,
        redis_conn_id: str = "redis_default",
        poll_interval_s: float = 5.0,
    ) -> None:
        super().__init__()
        self.truth = truth
        self.report = report
        self.freshness_s = freshness_s
        self.exact = exact
        self.deadline_ms = deadline_ms
        self.redis_conn_id = redis_conn_id
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "truth": self.truth,
                "report": self.report,
                "freshness_s": self.freshness_s,
                "exact": self.exact,
                "deadline_ms": self.deadline_ms,
                "redis_conn_id": self.redis_conn_id,
                "poll_interval_s": self.poll_interval_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pages = sorted(self.truth.get("page_totals", {}))
        from clickstream.hooks.redis import ClickstreamRedisHook  # in the triggerer only; see streaming_job.run

        client = await ClickstreamRedisHook.async_client(self.redis_conn_id)
        try:
            while True:
                now_ms = int(time.time() * 1000)
                result: SlaResult = check_burst(
                    truth=self.truth,
                    cells=await read_burst_cells(client, pages),
                    now_ms=now_ms,
                    freshness_s=self.freshness_s,
                    exact=self.exact,
                    report=self.report,
                )
                if result.ok or now_ms >= self.deadline_ms:
                    yield TriggerEvent({"status": "ok" if result.ok else "failed", "result": result.to_dict()})
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            await client.aclose()
