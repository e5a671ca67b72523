"""Watching a detached Spark streaming job from the triggerer, without holding a worker slot.

The job reports each query's progress to Redis (``clickstream:progress:<query>``, written by
:class:`clickstream.spark.progress.RedisProgressListener`); its process is found from its
:class:`~clickstream.spark_job.SparkJobHandle`. The trigger polls both and fires once,
when the job finished, failed, died, stalled, or was asked to stop. What to do then (restart from
the checkpoint, stop it, fail) is the operator's decision, not the trigger's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from clickstream.redis_layout import CONTROL_KEY, STREAMING_QUERIES, progress_key
from clickstream.spark_job import JobProcess, SparkJobHandle

# The states a trigger event reports, in the ``status`` field.
FINISHED, FAILED, DIED, STALLED, STOP_REQUESTED = "finished", "failed", "died", "stalled", "stop_requested"


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    error: str | None = None


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def assess(
    *,
    process: JobProcess,
    progress: Mapping[str, Mapping[str, str]],
    control: Mapping[str, str],
    launched_ms: int,
    now_ms: int,
    stall_timeout_ms: int,
    startup_timeout_ms: int,
) -> Verdict | None:
    """Decide from one observation whether the job needs its operator; ``None`` means keep watching.

    Only progress written since this launch counts: a previous run's "stopped" must not end this one.
    Pure, so that every rule is unit-tested without Spark.
    """
    if control.get("command") == "stop" and _int(control.get("requested_ms")) >= launched_ms:
        return Verdict(STOP_REQUESTED, f"stop requested: {control.get('reason') or 'no reason given'}")
    current = {q: p for q, p in progress.items() if _int(p.get("started_ms")) >= launched_ms}
    errors = [f"{q}: {p.get('error', 'failed')}" for q, p in current.items() if p.get("state") == "failed"]
    if process.alive is None:  # on another host: the queries' own states tell
        if errors:
            return Verdict(FAILED, "a query failed", error="; ".join(errors))
        if len(current) == len(progress) and all(p.get("state") == "stopped" for p in current.values()):
            return Verdict(FINISHED, "every query stopped cleanly")
    elif not process.alive:
        if errors:
            return Verdict(FAILED, "a query failed and the job exited", error="; ".join(errors))
        if len(current) == len(progress) and all(p.get("state") == "stopped" for p in current.values()):
            return Verdict(FINISHED, "every query stopped cleanly and the job exited")
        code = "" if process.returncode is None else f" with exit code {process.returncode}"
        return Verdict(DIED, f"the job's process exited{code} without stopping its queries")
    for query in progress:
        if query not in current:
            if now_ms - launched_ms > startup_timeout_ms:
                return Verdict(STALLED, f"{query} has not started {(now_ms - launched_ms) // 1000}s after launch")
            continue
        seen = current[query]
        if seen.get("state") in {"stopped", "failed"}:
            continue  # the job is winding down; its exit comes next
        if not seen.get("updated_ms") and not seen.get("idle_ms"):
            # Started, but no batch and no idle report yet: a relaunch's first micro-batch restores the state
            # from the checkpoint and generates code, which on a busy machine outlasts a stall timeout.
            if now_ms - launched_ms > startup_timeout_ms:
                return Verdict(
                    STALLED, f"{query} has reported no micro-batch {(now_ms - launched_ms) // 1000}s after launch"
                )
            continue
        heartbeat = max(_int(seen.get(f)) for f in ("started_ms", "updated_ms", "idle_ms"))
        if now_ms - heartbeat > stall_timeout_ms:
            return Verdict(
                STALLED,
                f"{query} reported no progress for {(now_ms - heartbeat) // 1000}s "
                f"(last batch {seen.get('batch_id', 'none')})",
            )
    return None


# How long a job stopped by a user's action gets to finish its batch before it is killed: within half of the
# triggerer's on_kill_timeout (30 s by default), since killing and reaping may take as long again.
KILL_GRACE_S = 15.0


class StreamingJobTrigger(BaseTrigger):
    """Fires one event when the streaming job needs attention; see :func:`assess` for the rules.

    :param job: The job's :class:`SparkJobHandle`, as a dict. Required.
    :param redis_conn_id: The Airflow Redis connection where the job reports its progress.
        Default: ``"redis_default"``.
    :param queries: The job's query names. Default: ``("clickstream_counts",)``.
    :param stall_timeout_s: No progress for this many seconds, while alive, is a stall; Redis unreachable for
        as long is one too. Default: ``180.0``.
    :param startup_timeout_s: A query that has not started, or not reported its first micro-batch (or that it
        is idle), this many seconds after launch is a stall. Default: ``300.0``.
    :param poll_interval_s: How often, in seconds, to look. Default: ``2.0``.
    :param settle_s: No event fires sooner than this many seconds after the trigger starts. A task resumed
        sooner can be failed by Airflow's scheduler, which may read the deferring worker's exit only after the
        resume and take it for the resumed task's death (apache/airflow#67287 and #72716; Airflow 3.3.2 has
        them, the fixes are not released). A job that dies at once is restarted that much later. Default:
        ``10.0``.
    :param kill_grace_s: When a user marks the deferred task failed or succeeded, or clears it, the job gets
        this long to finish its running batch after SIGTERM before its process group is killed
        (:meth:`on_kill`). Default: :data:`KILL_GRACE_S`.
    """

    def __init__(
        self,
        job: dict[str, Any],
        redis_conn_id: str = "redis_default",
        queries: Sequence[str] = STREAMING_QUERIES,
        stall_timeout_s: float = 180.0,
        startup_timeout_s: float = 300.0,
        poll_interval_s: float = 2.0,
        settle_s: float = 10.0,
        kill_grace_s: float = KILL_GRACE_S,
    ) -> None:
        super().__init__()
        self.job = dict(job)
        self.redis_conn_id = redis_conn_id
        self.queries = list(queries)
        self.stall_timeout_s = stall_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.poll_interval_s = poll_interval_s
        self.settle_s = settle_s
        self.kill_grace_s = kill_grace_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job": self.job,
                "redis_conn_id": self.redis_conn_id,
                "queries": self.queries,
                "stall_timeout_s": self.stall_timeout_s,
                "startup_timeout_s": self.startup_timeout_s,
                "poll_interval_s": self.poll_interval_s,
                "settle_s": self.settle_s,
                "kill_grace_s": self.kill_grace_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here, in the triggerer: the streaming operator's module imports this one, and the DAG
        # processor parses the DAG files importing that every 30 s, in a fresh process, where redis-py took 0.45 s.
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from clickstream.hooks.redis import ClickstreamRedisHook

        handle = SparkJobHandle.from_dict(self.job)
        started = time.monotonic()
        client = await ClickstreamRedisHook.async_client(self.redis_conn_id)
        unreachable_since: float | None = None
        last_said = 0.0
        try:
            while True:
                # /proc reads and the zombie reap are quick, but they are still system calls: keep them off the loop.
                process = await asyncio.to_thread(handle.process)
                try:
                    progress, control = await self._observe(client)
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    # Redis restarting is a fault to ride out, not the job's end: keep watching, for as long as
                    # a stall would be tolerated.
                    if unreachable_since is None:
                        unreachable_since, last_said = time.monotonic(), 0.0
                    waited = time.monotonic() - unreachable_since
                    if waited <= self.stall_timeout_s:
                        if waited == 0.0 or waited - last_said >= 30:  # say so, without flooding the log
                            last_said = waited
                            self.log.warning(
                                "Redis unreachable for %.0fs (%s); still watching job %s", waited, exc, handle.pid
                            )
                        await asyncio.sleep(self.poll_interval_s)
                        continue
                    verdict: Verdict | None = Verdict(STALLED, f"Redis has been unreachable for {waited:.0f}s: {exc}")
                    progress = {}
                else:
                    unreachable_since = None
                    verdict = assess(
                        process=process,
                        progress=progress,
                        control=control,
                        launched_ms=handle.launched_ms,
                        now_ms=int(time.time() * 1000),
                        stall_timeout_ms=int(self.stall_timeout_s * 1000),
                        startup_timeout_ms=int(self.startup_timeout_s * 1000),
                    )
                if verdict is not None:
                    self.log.info("Streaming job %s: %s (%s)", handle.pid, verdict.status, verdict.reason)
                    settling = self.settle_s - (time.monotonic() - started)
                    if settling > 0:  # see settle_s: let the scheduler see the deferring worker's exit first
                        await asyncio.sleep(settling)
                    yield TriggerEvent(
                        {
                            "status": verdict.status,
                            "reason": verdict.reason,
                            "error": verdict.error,
                            "returncode": process.returncode,
                            "job": handle.to_dict(),
                            "progress": progress,
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            await client.aclose()

    async def on_kill(self) -> None:
        """A user marked the deferred task failed or succeeded, or cleared it: stop the job. Left running, it would
        write counts with nobody watching it, and a rerun of the task would launch a second driver on the same
        checkpoint. (Not called when the triggerer restarts or hands the trigger to another triggerer.)"""
        handle = SparkJobHandle.from_dict(self.job)
        if not handle.local:
            self.log.warning(
                "The task was stopped by a user, but its streaming job (pid %d) runs on %s: stop it there",
                handle.pid,
                handle.host,
            )
            return
        self.log.info(
            "The task was stopped by a user: stopping its streaming job (pid %d; SIGTERM, its process group killed "
            "after %.0fs)",
            handle.pid,
            self.kill_grace_s,
        )
        stopped = await asyncio.to_thread(handle.stop, self.kill_grace_s)
        self.log.info("Streaming job %d %s", handle.pid, "stopped" if stopped else "killed: it outlasted its grace")

    async def _observe(self, client: Any) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        pipe = client.pipeline(transaction=False)
        for query in self.queries:
            pipe.hgetall(progress_key(query))
        pipe.hgetall(CONTROL_KEY)
        *raw_progress, raw_control = await pipe.execute()
        decode = lambda raw: {k.decode(): v.decode() for k, v in raw.items()}  # noqa: E731
        progress = {q: decode(raw) for q, raw in zip(self.queries, raw_progress, strict=True)}
        return progress, decode(raw_control)
