"""Driving ClickstreamStreamingOperator as Airflow does, in-process: execute, the trigger's event, resume."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from clickstream import redis_layout
from clickstream.operators.streaming import ClickstreamStreamingOperator
from clickstream.spark_job import SparkJobHandle


def first_event(deferred: TaskDeferred, timeout: float = 240) -> dict:
    async def run() -> dict:
        async for event in deferred.trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def handle_of(deferred: TaskDeferred) -> SparkJobHandle:
    return SparkJobHandle.from_dict(deferred.trigger.job)


def wait_for_batch(redis_client, handle: SparkJobHandle, batch_id: int, timeout: float = 180) -> None:
    """Until this launch's counts query has committed ``batch_id``."""
    key = redis_layout.progress_key(redis_layout.COUNTS_QUERY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}
        if int(progress.get("started_ms", 0)) >= handle.launched_ms and int(progress.get("batch_id", -1)) >= batch_id:
            return
        assert handle.process().alive, Path(handle.log_path).read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"no batch {batch_id} within {timeout}s")


def run_bounded(op: ClickstreamStreamingOperator, context: dict[str, Any], handles: list[SparkJobHandle]) -> dict:
    """One bounded task try from launch to its summary (the job drains the topic and stops)."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    handles.append(handle_of(deferred.value))
    event = first_event(deferred.value)
    assert event["status"] == "finished", f"{event}\n{handles[-1].log_tail()}"
    return op.execute_complete(context, event, **deferred.value.kwargs)


def kill_after_batch(
    op: ClickstreamStreamingOperator, context: dict[str, Any], handles: list[SparkJobHandle], redis_client, batch: int
) -> tuple[TaskDeferred, dict]:
    """Launch, SIGKILL the job's process group once it has committed ``batch``; the deferral and the trigger's
    event ("died"), for ``execute_complete``."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    job = handle_of(deferred.value)
    handles.append(job)
    wait_for_batch(redis_client, job, batch)
    os.killpg(job.pid, signal.SIGKILL)
    died = first_event(deferred.value)
    assert died["status"] == "died", died
    return deferred.value, died
