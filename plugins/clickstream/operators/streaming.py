"""Run the Spark streaming application under Airflow's supervision, without holding a worker slot."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk import conf as airflow_conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.observability.stats import Stats

from clickstream import redis_layout
from clickstream.defaults import DRIVER_MEMORY, RETENTION_MINUTES, SPARK_CONF, WATERMARK
from clickstream.hooks.kafka_topics import KafkaTopicsHook
from clickstream.operators._templated import optional
from clickstream.redis_layout import CONTROL_KEY
from clickstream.schema import DEAD_LETTER_TOPIC, TOPIC
from clickstream.spark.checkpoint import (
    COUNTS_CHECKPOINT,
    Origin,
    read_origin,
    resume_position,
    stuck_batch,
    write_origin,
)
from clickstream.spark_job import SparkJobHandle, missing_application
from clickstream.triggers.streaming_job import (
    DIED,
    FAILED,
    FINISHED,
    KILL_GRACE_S,
    STALLED,
    STOP_REQUESTED,
    StreamingJobTrigger,
)

if TYPE_CHECKING:
    from clickstream.hooks.redis import ClickstreamRedisHook
    from clickstream.kafka_topic_state import TopicState

BOUNDED, LONG_RUNNING = "bounded", "long_running"
# How long a launch waits for Redis to answer before it fails the task: a restart's worth.
REDIS_WAIT_S = 60.0


def _airflow_home() -> str:
    return os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))


def statsd_env() -> dict[str, str]:
    """Where the job sends its own StatsD metrics: Airflow's StatsD server, when Airflow's metrics are on."""
    if not airflow_conf.getboolean("metrics", "statsd_on", fallback=False):
        return {}
    host = airflow_conf.get("metrics", "statsd_host", fallback="localhost")
    port = airflow_conf.get("metrics", "statsd_port", fallback="8125")
    return {"CLICKSTREAM_STATSD_ADDRESS": f"{host}:{port}"}


class ClickstreamStreamingOperator(BaseOperator):
    """Submit ``include/spark/clickstream_streaming.py`` through ``spark_default``, then defer to a watcher.

    The job runs detached; :class:`~clickstream.triggers.streaming_job.StreamingJobTrigger` watches its
    process and the progress it writes to Redis. When the job dies or stalls, the task restarts it from
    its checkpoint (so no count is lost or doubled), up to ``max_restarts`` times, then fails with the
    job's own error. Two modes:

    - ``bounded``: the job processes what the topic holds when it starts (``availableNow``) and stops;
      the task succeeds once it has stopped cleanly. This is what ``airflow dags test`` runs.
    - ``long_running``: the job runs until asked to stop (``clickstream.redis_layout.request_stop``,
      i.e. ``HSET clickstream:control:streaming command stop requested_ms <now>``); any other exit is a
      crash and is restarted.

    Kafka and Redis come from ``kafka_config_id`` and ``redis_conn_id``; the Redis URL reaches the job
    through its environment, never its command line. The job sends its metrics to Airflow's StatsD
    server when Airflow's are on, and with ``metrics_port`` serves Spark's own for Prometheus.

    :param application: The path of ``include/spark/clickstream_streaming.py`` as deployed next to the DAGs,
        or a URL that spark-submit fetches. (templated) Required.
    :param mode: ``"bounded"`` or ``"long_running"``, as above. (templated) Default: ``"bounded"``.
    :param topic: The topic to count. (templated) Default: ``"clickstream-events"``.
    :param dead_letter_topic: The topic invalid records go to, with their reason. (templated)
        Default: ``"clickstream-events-dlq"``.
    :param checkpoint_dir: Where Spark keeps the query's offsets and id between launches: a cache that makes a
        restart quick, not the record of what was counted (Redis keeps that, per Kafka topic id and partition).
        Before each launch the checkpoint is compared with the broker and with Redis: one written against
        another Kafka cluster or another incarnation of the topic is set aside (renamed, never deleted), and a
        job without a checkpoint starts where Redis's counts end. ``None`` means
        ``$AIRFLOW_HOME/clickstream/checkpoints/<Kafka cluster id>/<topic>``, so each Kafka keeps its own.
        (templated) Default: ``None``.
    :param watermark: How late an event may be and still count, as Spark's ``withWatermark`` takes it.
        (templated) Default: ``"2 minutes"``.
    :param trigger_interval: The micro-batch interval, as Spark's processing-time trigger takes it (not used
        in ``bounded`` mode). (templated) Default: ``"1 second"``.
    :param starting_offsets: Where a job starts reading a topic that Redis has counted nothing of (else it
        starts where Redis's counts end): ``"earliest"``, ``"latest"`` or Spark's per-partition JSON.
        Default: ``"earliest"``.
    :param max_offsets_per_trigger: The most Kafka offsets one micro-batch reads; ``None``, ``""`` or
        ``"None"`` means no limit. (templated) Default: ``None``.
    :param retention_minutes: How long Redis keeps windows, in minutes of event time before the newest window;
        ``0`` keeps them all. Default: ``10080`` (7 days).
    :param max_restarts: How many times one task try restarts a job that died or stalled before it fails.
        (templated) Default: ``3``.
    :param stall_timeout_s: A job that reports no progress for this many seconds while alive has stalled and
        is restarted. (templated) Default: ``180.0``.
    :param startup_timeout_s: A query that has not started, or not reported its first micro-batch (or that it
        is idle), this many seconds after launch has stalled: a relaunch's first batch restores the
        checkpointed state, so it gets this rather than ``stall_timeout_s``. Default: ``300.0``.
    :param poll_interval_s: How often, in seconds, the trigger looks at the job. Default: ``2.0``.
    :param stop_grace_s: How long, in seconds, a requested stop waits for the running batch before the job is
        killed (at most 30 for a stalled job). Default: ``90.0``.
    :param conn_id: The Airflow Spark connection that ``spark-submit`` is built from. (templated)
        Default: ``"spark_default"``.
    :param kafka_config_id: The Airflow Kafka connection whose ``bootstrap.servers`` the job reads from.
        (templated) Default: ``"kafka_default"``.
    :param redis_conn_id: The Airflow Redis connection the job writes counts and progress to. (templated)
        Default: ``"redis_default"``.
    :param jars: Comma-separated jars for the driver and executors, such as the Spark Kafka connector's.
        (templated) Default: ``None``.
    :param conf: Spark configuration properties, added to ``{"spark.ui.enabled": "false"}``. (templated)
        Default: ``None``.
    :param driver_memory: The driver's memory, as spark-submit takes it. Default: ``"1g"``.
    :param log_dir: Where each launch's output is written, under ``<dag_id>/<run_id>/``. ``None`` means
        ``clickstream-spark`` in Airflow's ``[logging] base_log_folder``. Default: ``None``.
    :param metrics_port: The port the job serves the Spark UI on, with Prometheus metrics at
        ``/metrics/prometheus``; ``None``, ``""`` or ``"None"`` serves none. (templated) Default: ``None``.
    """

    template_fields: Sequence[str] = (
        "application",
        "topic",
        "dead_letter_topic",
        "checkpoint_dir",
        "watermark",
        "trigger_interval",
        "mode",
        "max_restarts",
        "stall_timeout_s",
        "max_offsets_per_trigger",
        "jars",
        "conf",
        "metrics_port",
        "conn_id",
        "kafka_config_id",
        "redis_conn_id",
    )
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        application: str,
        mode: str = BOUNDED,
        topic: str = TOPIC,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        checkpoint_dir: str | None = None,
        watermark: str = WATERMARK,
        trigger_interval: str = "1 second",
        starting_offsets: str = "earliest",
        max_offsets_per_trigger: int | str | None = None,
        retention_minutes: int = RETENTION_MINUTES,
        max_restarts: int | str = 3,
        stall_timeout_s: float | str = 180.0,
        startup_timeout_s: float = 300.0,
        poll_interval_s: float = 2.0,
        stop_grace_s: float = 90.0,
        conn_id: str = "spark_default",
        kafka_config_id: str = "kafka_default",
        redis_conn_id: str = "redis_default",
        jars: str | None = None,
        conf: dict[str, Any] | None = None,
        driver_memory: str | None = DRIVER_MEMORY,
        log_dir: str | None = None,
        metrics_port: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.application = application
        self.metrics_port = metrics_port
        self.mode = mode
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.checkpoint_dir = checkpoint_dir
        self.watermark = watermark
        self.trigger_interval = trigger_interval
        self.starting_offsets = starting_offsets
        self.max_offsets_per_trigger = max_offsets_per_trigger
        self.retention_minutes = retention_minutes
        self.max_restarts = max_restarts
        self.stall_timeout_s = stall_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.poll_interval_s = poll_interval_s
        self.stop_grace_s = stop_grace_s
        self._job: SparkJobHandle | None = None  # the job this process launched, for on_kill
        self._checkpoint_path = ""  # where the job this process launched keeps its checkpoint
        self.start_notes: list[str] = []  # what each launch found of the checkpoint and did, as logged
        self.conn_id = conn_id
        self.kafka_config_id = kafka_config_id
        self.redis_conn_id = redis_conn_id
        self.jars = jars
        self.conf = conf
        self.driver_memory = driver_memory
        self.log_dir = log_dir

    # ------------------------------------------------------------------ launching

    def _checkpoint(self, cluster_id: str) -> str:
        """Where Spark keeps the query's offsets and id between launches, for the Kafka cluster ``cluster_id``."""
        if self.checkpoint_dir:
            return self.checkpoint_dir
        # One per Kafka cluster and topic: a checkpoint holds one cluster's offsets, and Spark refuses to go on from
        # one whose offsets the broker does not hold ("Some data may have been lost"), so switching clusters and
        # back resumes each where it was.
        return os.path.join(_airflow_home(), "clickstream", "checkpoints", cluster_id, self.topic)

    def _legacy_checkpoint(self) -> str:
        """The default before checkpoints were kept per Kafka cluster: one folder, whichever cluster wrote it."""
        name = "checkpoint" if self.topic == TOPIC else f"checkpoint-{self.topic}"
        return os.path.join(_airflow_home(), "clickstream", name)

    def prepare_start(self) -> tuple[str, str]:
        """Compare the checkpoint with the broker and with Redis, act on it, and return the checkpoint's path and
        the starting offsets for the job (:func:`~clickstream.spark.resume.plan_start`). Fails the task at once,
        saying what was found and what fixes it, when no start would count every event once."""
        from clickstream.spark.resume import SET_ASIDE, CannotResume, plan_start

        topic = KafkaTopicsHook(self.kafka_config_id).topic_state(self.topic)
        counted = self._counted_offsets(topic)
        checkpoint = self._checkpoint(topic.cluster_id)
        if "://" in checkpoint and not checkpoint.startswith("file://"):
            self.log.info("The checkpoint %s is not a local folder; not compared with Redis", checkpoint)
            return checkpoint, plan_start(
                checkpoint, topic, None, None, counted, self.starting_offsets
            ).starting_offsets
        local = checkpoint.removeprefix("file://")
        if not self.checkpoint_dir:
            self._adopt_legacy_checkpoint(local, topic)
        query = os.path.join(local, COUNTS_CHECKPOINT)
        try:
            plan = plan_start(local, topic, read_origin(local), resume_position(query), counted, self.starting_offsets)
        except CannotResume as impossible:
            raise AirflowFailException(str(impossible)) from None
        if plan.action == SET_ASIDE:
            aside = f"{local}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}"
            os.rename(local, aside)
            Path(aside, "set-aside.txt").write_text(plan.summary + "\n")
            self._note(f"Streaming job: {plan.summary} (kept in {aside})", warning=True)
        else:
            self._note(f"Streaming job: {plan.summary}")
        write_origin(local, Origin(topic.cluster_id, topic.topic, topic.topic_id))
        return checkpoint, plan.starting_offsets

    def _counted_offsets(self, topic: TopicState) -> dict[int, int]:
        """What Redis has counted of ``topic``, waiting out a Redis that is briefly away (a restart): the job
        itself would wait for it too, and without it no start can be chosen."""
        from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError  # see _redis_hook

        deadline = time.monotonic() + REDIS_WAIT_S
        while True:
            try:
                return redis_layout.read_counted_offsets(self._redis_hook().get_conn(), topic.topic_id)
            except (ConnectionError, TimeoutError) as exc:
                if isinstance(exc, AuthenticationError) or time.monotonic() > deadline:  # a refused login stays so
                    raise AirflowException(
                        f"cannot read what Redis has counted of {topic.describe()} within {REDIS_WAIT_S:.0f}s "
                        f"(connection {self.redis_conn_id!r}): {exc}"
                    ) from exc
                self.log.warning("Redis did not answer (%s); trying again", exc)
                time.sleep(2)

    def _adopt_legacy_checkpoint(self, checkpoint: str, topic: TopicState) -> None:
        """Move the pre-cluster-id default checkpoint to ``checkpoint`` when it belongs to this cluster and topic."""
        from clickstream.spark.resume import foreign_reason

        legacy = self._legacy_checkpoint()
        if os.path.exists(checkpoint) or not os.path.isdir(legacy):
            return
        query = os.path.join(legacy, COUNTS_CHECKPOINT)
        if foreign_reason(topic, read_origin(legacy), resume_position(query)) is None:
            os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
            os.rename(legacy, checkpoint)
            self._note(f"Moved the checkpoint {legacy}, written against {topic.describe()}, to {checkpoint}")

    def _note(self, line: str, warning: bool = False) -> None:
        self.start_notes.append(line)
        (self.log.warning if warning else self.log.info)("%s", line)

    def application_args(self, checkpoint: str, starting_offsets: str) -> list[str]:
        args = [
            "--bootstrap-servers", KafkaTopicsHook(self.kafka_config_id).bootstrap_servers(),
            "--topic", self.topic,
            "--dead-letter-topic", self.dead_letter_topic,
            "--checkpoint-dir", checkpoint,
            "--watermark", self.watermark,
            "--trigger", self.trigger_interval,
            "--starting-offsets", starting_offsets,
            "--retention-minutes", str(self.retention_minutes),
        ]  # fmt: skip
        if self.mode == BOUNDED:
            args.append("--available-now")
        if (metrics_port := optional(self.metrics_port, int)) is not None:
            args += ["--metrics-port", str(metrics_port)]
        if (max_offsets := optional(self.max_offsets_per_trigger, int)) is not None:
            args += ["--max-offsets-per-trigger", str(max_offsets)]
        return args

    def _check_arguments(self) -> None:
        if self.mode not in (BOUNDED, LONG_RUNNING):
            raise AirflowFailException(f"mode must be {BOUNDED!r} or {LONG_RUNNING!r}, got {self.mode!r}")
        if problem := missing_application(self.application, "clickstream_streaming.py"):
            raise AirflowFailException(problem)
        for name in ("max_restarts", "stall_timeout_s"):
            try:
                if float(getattr(self, name)) < 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise AirflowFailException(
                    f"{name} must be a non-negative number, got {getattr(self, name)!r}"
                ) from None

    def launch(self, context: Any, attempt: int) -> SparkJobHandle:
        from clickstream.hooks.spark_submit import DetachedSparkSubmitHook  # see _redis_hook

        self._checkpoint_path, starting_offsets = self.prepare_start()
        hook = DetachedSparkSubmitHook(
            conn_id=self.conn_id,
            conf={**SPARK_CONF, **(self.conf or {})},
            jars=self.jars or None,
            driver_memory=self.driver_memory,
            name=f"clickstream-streaming-{self.task_id}",
            application_args=self.application_args(self._checkpoint_path, starting_offsets),
            env_vars={
                "REDIS_URL": self._redis_hook().url(),
                **KafkaTopicsHook(self.kafka_config_id).spark_job_env(),
                **statsd_env(),
            },
        )
        log_dir = Path(
            self.log_dir or os.path.join(airflow_conf.get("logging", "base_log_folder"), "clickstream-spark")
        )
        run_id = str(context.get("run_id", "manual")).replace(":", "_").replace("+", "_")
        log_path = log_dir / self.dag_id / run_id / f"{self.task_id}-launch{attempt}.log"
        handle = self._job = hook.submit_detached(self.application, log_path)
        self.log.info("Streaming job started (pid %d, %s mode); its output: %s", handle.pid, self.mode, log_path)
        return handle

    def _defer(self, handle: SparkJobHandle, restarts: int, failed_batches: list[int] | None = None) -> None:
        self.defer(
            trigger=StreamingJobTrigger(
                job=handle.to_dict(),
                redis_conn_id=self.redis_conn_id,
                stall_timeout_s=float(self.stall_timeout_s),
                startup_timeout_s=self.startup_timeout_s,
                poll_interval_s=self.poll_interval_s,
            ),
            method_name="execute_complete",
            kwargs={"restarts": restarts, "failed_batches": failed_batches or [], "checkpoint": self._checkpoint_path},
        )

    def execute(self, context: Any) -> None:
        self._check_arguments()
        needs: dict[str, tuple[str, ...]] = {self.topic: ("READ",)}
        if self.dead_letter_topic:
            needs[self.dead_letter_topic] = ("WRITE",)
        KafkaTopicsHook(self.kafka_config_id).require_access(needs)  # before Spark, which would only retry
        handle = self.launch(context, 0)
        self._record(redis_layout.record_launch, str(context.get("run_id", "manual")))
        self._defer(handle, restarts=0)

    def on_kill(self) -> None:
        """The task was killed while running here (launching or relaunching the job): stop the job it launched,
        as the trigger's ``on_kill`` does while the task is deferred."""
        if self._job is not None and self._job.local:
            self.log.info("Task killed: stopping the streaming job it launched (pid %d)", self._job.pid)
            self._job.stop(min(float(self.stop_grace_s), KILL_GRACE_S))

    def _redis_hook(self) -> ClickstreamRedisHook:
        # Imported here, as the Spark hook is in launch: the DAG processor parses the DAG files that import this
        # module every 30 s, in a fresh process each time, and redis-py and the Spark provider took 0.6 s of
        # its 0.9 s there.
        from clickstream.hooks.redis import ClickstreamRedisHook

        return ClickstreamRedisHook(redis_conn_id=self.redis_conn_id)

    def _record(self, write: Any, *args: Any) -> None:
        """The job's launches and restarts in Redis, for the serving API; a Redis fault here is only logged:
        it must not fail the job it describes."""
        try:
            write(self._redis_hook().get_conn(), *args)
        except Exception as exc:
            self.log.warning("Could not record the streaming job's launch or restart in Redis: %s", exc)

    # ------------------------------------------------------------------ resuming

    def execute_complete(
        self,
        context: Any,
        event: dict[str, Any],
        restarts: int = 0,
        failed_batches: list[int] | None = None,
        checkpoint: str = "",
    ) -> dict[str, Any]:
        status, handle = event["status"], SparkJobHandle.from_dict(event["job"])
        if status != FINISHED and not handle.local:
            raise AirflowException(
                f"the streaming job ({status}: {event.get('reason')}) runs on {handle.host}, and this task resumed "
                "on another host, which cannot stop or restart it: run the task where it was launched"
            )
        self.log.info("Streaming job %d: %s (%s)", handle.pid, status, event.get("reason"))
        summary = {"status": status, "restarts": restarts, "progress": event.get("progress", {})}
        if status == FINISHED and self.mode == BOUNDED:
            return summary
        if status == STOP_REQUESTED:
            stopped = handle.stop(self.stop_grace_s)
            self._redis_hook().get_conn().delete(CONTROL_KEY)
            if not stopped:
                self.log.warning("The job did not stop within %ss and was killed", self.stop_grace_s)
            return {**summary, "stopped_cleanly": stopped}
        if status == STALLED:
            handle.stop(grace_s=min(self.stop_grace_s, 30.0))  # a stalled job may not finish its batch
        elif status not in (DIED, FAILED, FINISHED):
            raise AirflowException(f"unexpected event from the streaming trigger: {event}")
        else:
            handle.kill()  # the driver may linger after its JVM died
        why = (
            event.get("error") or f"{event.get('reason')}; the end of its log ({handle.log_path}):\n{handle.log_tail()}"
        )
        stuck = stuck_batch(os.path.join(checkpoint.removeprefix("file://"), COUNTS_CHECKPOINT)) if checkpoint else None
        failed_batches = [*(failed_batches or []), *([stuck.batch_id] if stuck else [])]
        where = f" on {stuck.describe()}" if stuck else ""
        if len(failed_batches) > 1 and len(set(failed_batches)) == 1:
            where += f", where each of its {len(failed_batches)} launches failed"
        if restarts >= int(self.max_restarts):
            raise AirflowException(
                f"the streaming job {status} after {restarts} restart(s) (max_restarts={self.max_restarts})"
                f"{where}: {why}"
            )
        Stats.incr("clickstream.streaming.restarts")
        self._record(redis_layout.record_restart, f"{status}{where}: {event.get('error') or event.get('reason')}")
        self.log.warning(
            "Restarting the streaming job from its checkpoint (restart %d)%s: %s", restarts + 1, where, why
        )
        self._defer(self.launch(context, restarts + 1), restarts=restarts + 1, failed_batches=failed_batches)
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover
