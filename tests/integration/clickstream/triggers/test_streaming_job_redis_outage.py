"""The streaming trigger rides out a Redis outage, and says so when it lasts longer than a stall, whether
Redis is down (refused) or hung (a stopped process: connections open, nothing answers); and it fires no
event before its settle time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import redis

from clickstream.hooks.redis import ClickstreamRedisHook
from clickstream.spark_job import SparkJobHandle
from clickstream.triggers.streaming_job import DIED, STALLED, StreamingJobTrigger
from devstack.ports import free_port
from devstack.processes import running
from devstack.redis_server import RedisServer

pytestmark = pytest.mark.integration


def trigger_for(
    proc: subprocess.Popen, redis_port: int, stall_timeout_s: float, settle_s: float = 0.0
) -> StreamingJobTrigger:
    handle = SparkJobHandle(
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        log_path="/dev/null",
        launched_ms=int(time.time() * 1000),
        application="a stand-in job",
    )
    return StreamingJobTrigger(
        job=handle.to_dict(),
        redis_conn_id="redis_outage",
        stall_timeout_s=stall_timeout_s,
        startup_timeout_s=600,
        poll_interval_s=0.2,
        settle_s=settle_s,
    )


async def first_event(trigger: StreamingJobTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def test_redis_down_longer_than_a_stall_is_reported_as_one(monkeypatch):
    port = free_port()  # nothing listens here: Redis is down
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_OUTAGE", f"redis://127.0.0.1:{port}/0")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = time.monotonic()
        event = asyncio.run(asyncio.wait_for(first_event(trigger_for(job, port, stall_timeout_s=2)), 30))
        waited = time.monotonic() - started
    finally:
        job.kill()
        job.wait()
    assert event["status"] == STALLED
    assert event["reason"].startswith("Redis has been unreachable for ")
    assert 2 <= waited < 10


def test_a_job_that_died_while_redis_was_down_is_reported_once_redis_is_back(tmp_path, monkeypatch):
    server = RedisServer(tmp_path / "redis", free_port(), persistent=False)
    server.prepare()
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_OUTAGE", server.url("writer"))
    job = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    trigger = trigger_for(job, server.port, stall_timeout_s=60)
    job.communicate(b"")  # the job dies during the outage

    async def outage_then_back() -> tuple[dict, float]:
        watching = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(3)
        assert not watching.done(), "the trigger must wait for Redis rather than judge blind"
        with contextlib.ExitStack() as stack:
            stack.enter_context(running("redis", server.command(), server.healthy, tmp_path / "redis.log"))
            back = time.monotonic()
            event = await asyncio.wait_for(watching, 30)
            return event, time.monotonic() - back

    event, after_s = asyncio.run(outage_then_back())
    assert event["status"] == DIED, event
    assert after_s < 10


def test_a_hung_redis_is_an_outage_to_the_trigger_and_the_hook_not_a_hang(tmp_path, monkeypatch):
    """SIGSTOP: Redis's socket still accepts, but nothing answers. Without timeouts every read would block for
    good, and the trigger would never judge the job again, not even its death."""
    server = RedisServer(tmp_path / "redis", free_port(), persistent=False)
    server.prepare()
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_OUTAGE", server.url("writer") + "?socket_timeout=1&socket_connect_timeout=1")
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with running("redis", server.command(), server.healthy, tmp_path / "redis.log") as redis_process:
        client = ClickstreamRedisHook(redis_conn_id="redis_outage").get_conn()
        assert client.ping()
        os.kill(redis_process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                client.get("clickstream:anything")
            # Bounded, not instant: redis-py retries a timed-out command (a reconnect and its AUTH time out too).
            assert time.monotonic() - started < 60
            started = time.monotonic()
            event = asyncio.run(asyncio.wait_for(first_event(trigger_for(job, server.port, stall_timeout_s=2)), 60))
            waited = time.monotonic() - started
        finally:
            os.kill(redis_process.pid, signal.SIGCONT)
            job.kill()
            job.wait()
    assert event["status"] == STALLED, event
    assert event["reason"].startswith("Redis has been unreachable for "), event
    assert 2 <= waited < 30, waited


def test_a_job_dead_at_once_is_reported_only_after_the_settle_time(tmp_path, monkeypatch):
    """Airflow's scheduler can fail a task resumed within seconds of deferring (apache/airflow#67287)."""
    server = RedisServer(tmp_path / "redis", free_port(), persistent=False)
    server.prepare()
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_OUTAGE", server.url("writer"))
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with running("redis", server.command(), server.healthy, tmp_path / "redis.log"):
        trigger = trigger_for(job, server.port, stall_timeout_s=60, settle_s=3)
        job.kill()
        job.wait()
        started = time.monotonic()
        event = asyncio.run(asyncio.wait_for(first_event(trigger), 30))
        waited = time.monotonic() - started
    assert event["status"] == DIED
    assert 3 <= waited < 8, waited
