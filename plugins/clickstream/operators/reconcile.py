"""The batch reconciler as an Airflow task: a spark-submit whose JSON report becomes the task's XCom."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from clickstream.defaults import DRIVER_MEMORY, SPARK_CONF
from clickstream.hooks.kafka_topics import KafkaTopicsHook
from clickstream.operators._templated import flag, optional
from clickstream.schema import TOPIC
from clickstream.spark_job import missing_application


def burst_time_range(burst: dict[str, Any] | None, from_ms: Any, to_ms: Any) -> tuple[int | None, int | None]:
    """The Kafka record-time range to recount: explicit bounds win, else the burst's own range."""
    start, end = optional(from_ms, int), optional(to_ms, int)
    if start is not None or end is not None:
        return start, end
    if burst:
        try:
            start, end = burst["kafka_time_range_ms"]
            return int(start), int(end)
        except (KeyError, TypeError, ValueError):
            raise AirflowFailException(
                "the burst has no kafka_time_range_ms: pass the XCom of ProduceClickstreamBurstOperator "
                f"(got keys {sorted(burst) if isinstance(burst, dict) else type(burst).__name__})"
            ) from None
    return None, None


class ReconcileClickstreamOperator(SparkSubmitOperator):
    """Run ``include/spark/clickstream_batch.py`` over a burst's time range; return its report.

    The report (``events_read``, ``invalid_events`` by reason, ``cells_missing_in_redis``,
    ``events_missing_from_redis``, ``repaired_cells``, ...) is pushed to XCom for the SLA check. With
    ``repair`` the cells Redis holds short (events later than the streaming watermark) are overwritten
    with the recount, which is idempotent. Without a range, the whole topic is recounted.

    The report travels through a local file, so the driver must run on the worker (local or client mode).

    :param application: The path of ``include/spark/clickstream_batch.py`` as deployed next to the DAGs.
        (templated) Required.
    :param burst: The XCom of :class:`~clickstream.operators.producer_burst.ProduceClickstreamBurstOperator`,
        whose ``kafka_time_range_ms`` is the range recounted when ``from_ms`` and ``to_ms`` are unset.
        (templated) Default: ``None``.
    :param from_ms: The first Kafka record time (epoch ms) to recount; overrides ``burst``. ``None``, ``""`` or
        ``"None"`` leave it unset. (templated) Default: ``None``.
    :param to_ms: Recount records before this Kafka record time (epoch ms); overrides ``burst``. (templated)
        Default: ``None``.
    :param repair: Whether cells Redis holds short are overwritten with the recount; a rendered ``"True"``
        or ``"false"`` is read as a boolean. (templated) Default: ``True``.
    :param topic: The topic to recount. (templated) Default: ``"clickstream-events"``.
    :param kafka_config_id: The Airflow Kafka connection whose ``bootstrap.servers`` the job reads from.
        (templated) Default: ``"kafka_default"``.
    :param redis_conn_id: The Airflow Redis connection to compare with and repair; its URL reaches the job
        through the environment, never the command line. (templated) Default: ``"redis_default"``.

    Other keyword arguments go to :class:`SparkSubmitOperator`, e.g. ``conn_id`` (the Spark connection,
    templated here; default ``"spark_default"``) and ``jars``. Here ``name`` defaults to
    ``"clickstream-batch"``, ``conf`` to ``{"spark.ui.enabled": "false"}`` and ``driver_memory`` to ``"1g"``.
    """

    template_fields: Sequence[str] = (
        *SparkSubmitOperator.template_fields,
        *("burst", "from_ms", "to_ms", "repair", "topic"),
        # SparkSubmitOperator keeps ``conn_id`` as ``_conn_id`` and does not template it; it is read only when
        # execute() builds the hook, after rendering.
        *("_conn_id", "kafka_config_id", "redis_conn_id"),
    )

    def __init__(
        self,
        *,
        application: str,
        burst: dict[str, Any] | None = None,
        from_ms: int | str | None = None,
        to_ms: int | str | None = None,
        repair: bool | str = True,
        topic: str = TOPIC,
        kafka_config_id: str = "kafka_default",
        redis_conn_id: str = "redis_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "clickstream-batch")
        kwargs.setdefault("conf", dict(SPARK_CONF))
        kwargs.setdefault("driver_memory", DRIVER_MEMORY)
        super().__init__(application=application, **kwargs)
        self.burst = burst
        self.from_ms = from_ms
        self.to_ms = to_ms
        self.repair = repair
        self.topic = topic
        self.kafka_config_id = kafka_config_id
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        if problem := missing_application(self.application, "clickstream_batch.py"):
            raise AirflowFailException(problem)
        KafkaTopicsHook(self.kafka_config_id).require_access({self.topic: ("READ",)})  # before Spark starts
        start, end = burst_time_range(self.burst, self.from_ms, self.to_ms)
        with tempfile.TemporaryDirectory(prefix="clickstream-report-") as tmp:
            report_path = Path(tmp) / "report.json"
            args = [
                "--bootstrap-servers", KafkaTopicsHook(self.kafka_config_id).bootstrap_servers(),
                "--topic", self.topic,
                "--report-file", str(report_path),
            ]  # fmt: skip
            if start is not None:
                args += ["--from-ms", str(start)]
            if end is not None:
                args += ["--to-ms", str(end)]
            if flag(self.repair):
                args.append("--repair")
            self.application_args = args
            # Imported here: the DAG processor parses the DAG files importing this module every 30 s, in a fresh
            # process each time, and redis-py alone took 0.45 s of that.
            from clickstream.hooks.redis import ClickstreamRedisHook

            redis_url = ClickstreamRedisHook(redis_conn_id=self.redis_conn_id).url()
            kafka_env = KafkaTopicsHook(self.kafka_config_id).spark_job_env()
            self.env_vars = {**(self.env_vars or {}), "REDIS_URL": redis_url, **kafka_env}  # not on the command line
            self._hook = None  # built from the arguments just set
            super().execute(context)
            if not report_path.is_file():
                raise AirflowException(f"the reconciler exited without writing its report to {report_path}")
            report = json.loads(report_path.read_text())
        self.log.info(
            "Reconciled %s events: %s cells compared, %s missing and %s short in Redis, %s repaired; invalid: %s",
            report["events_read"],
            report["cells_compared"],
            report["cells_missing_in_redis"],
            report["cells_short_in_redis"],
            report["repaired_cells"],
            report["invalid_events"],
        )
        return report
