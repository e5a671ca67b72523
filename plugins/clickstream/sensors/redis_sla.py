"""verify_redis: the burst's counts are in Redis, fresh and complete, or the task says which are not."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from clickstream.operators._templated import flag
from clickstream.redis_layout import read_counts
from clickstream.sla import SlaResult, check_burst
from clickstream.triggers.redis_sla import RedisSlaTrigger


class ClickstreamRedisSlaSensor(BaseSensorOperator):
    """Wait until Redis holds a burst's counts within the freshness SLA; see :func:`clickstream.sla.check_burst`.

    On timeout the task fails with every stale or wrong page and window in its message.

    :param burst: The XCom of :class:`~clickstream.operators.producer_burst.ProduceClickstreamBurstOperator`
        (a dict with ``ground_truth``). (templated) Required.
    :param report: The reconciler's report (XCom of ``ReconcileClickstreamOperator``), if it ran: events it
        found missing and did not repair are allowed to be missing. (templated) Default: ``None``.
    :param freshness_s: How old, in seconds, the newest window may be. (templated) Default: ``300.0``.
    :param exact_totals: Whether to also fail when a page holds more than was sent (only when nothing else
        writes the topic); a rendered ``"True"`` or ``"false"`` is read as a boolean. (templated)
        Default: ``False``.
    :param redis_conn_id: The Airflow Redis connection to read the counts from. (templated)
        Default: ``"redis_default"``.
    :param deferrable: Whether to wait in the triggerer rather than poking from a worker slot.
        Default: ``True``.

    Here ``poke_interval`` defaults to ``5.0`` seconds and ``timeout`` to ``120.0``; other keyword arguments
    go to :class:`~airflow.sdk.BaseSensorOperator`.
    """

    template_fields: Sequence[str] = ("burst", "report", "freshness_s", "exact_totals", "redis_conn_id")
    ui_color = "#fce4ec"

    def __init__(
        self,
        *,
        burst: dict[str, Any] | Any,
        report: dict[str, Any] | Any = None,
        freshness_s: float | str = 300.0,
        exact_totals: bool | str = False,
        redis_conn_id: str = "redis_default",
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        kwargs.setdefault("timeout", 120.0)
        super().__init__(**kwargs)
        self.burst = burst
        self.report = report
        self.freshness_s = freshness_s
        self.exact_totals = exact_totals
        self.redis_conn_id = redis_conn_id
        self.deferrable = deferrable

    def _truth(self) -> dict[str, Any]:
        truth = self.burst.get("ground_truth") if isinstance(self.burst, dict) else None
        if not isinstance(truth, dict):
            raise AirflowFailException(
                "burst must be the XCom of ProduceClickstreamBurstOperator (a dict with 'ground_truth'), "
                f"got {type(self.burst).__name__}"
            )
        return truth

    def check(self) -> SlaResult:
        truth = self._truth()
        # Imported here: the DAG processor parses the DAG files importing this module every 30 s, in a fresh
        # process each time, and redis-py alone took 0.45 s of that.
        from clickstream.hooks.redis import ClickstreamRedisHook

        client = ClickstreamRedisHook(redis_conn_id=self.redis_conn_id).get_conn()
        result = check_burst(
            truth=truth,
            cells=read_counts(client, sorted(truth.get("page_totals", {}))),
            now_ms=int(time.time() * 1000),
            freshness_s=float(self.freshness_s),
            exact=flag(self.exact_totals),
            report=self.report if isinstance(self.report, dict) else None,
        )
        if not result.ok:
            self.log.info("Redis SLA not met yet:\n%s", result.message())
        return result

    def poke(self, context: Any) -> bool:
        return self.check().ok

    def execute(self, context: Any) -> dict[str, Any] | None:
        if not self.deferrable:
            super().execute(context)
            return self.check().to_dict()
        result = self.check()
        if result.ok:
            return self._passed(result)
        timeout_s = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.defer(
            trigger=RedisSlaTrigger(
                truth=self._truth(),
                report=self.report if isinstance(self.report, dict) else None,
                freshness_s=float(self.freshness_s),
                exact=flag(self.exact_totals),
                deadline_ms=int((time.time() + timeout_s) * 1000),
                redis_conn_id=self.redis_conn_id,
                poll_interval_s=float(self.poke_interval),
            ),
            method_name="execute_complete",
        )
        return None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        result = SlaResult(**event["result"])
        if event["status"] != "ok":
            raise AirflowException(
                f"Redis SLA not met for the burst's {result.pages_checked} pages after {self.timeout}s "
                f"(freshness {float(self.freshness_s):g}s, {result.events_in_redis} of {result.events_expected} "
                f"events counted, {result.allowed_shortfall} allowed missing by the reconciler):\n{result.message()}"
            )
        return self._passed(result)

    def _passed(self, result: SlaResult) -> dict[str, Any]:
        self.log.info(
            "Redis SLA met: %d pages, %d of %d events, newest window %s (%ss old)",
            result.pages_checked,
            result.events_in_redis,
            result.events_expected,
            result.newest_window,
            result.newest_window_age_s,
        )
        return result.to_dict()
