"""The streaming trigger's rules, one observation at a time, and its serialization."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import time

import psutil
from job_processes import handle_of, job_process

from clickstream.spark_job import JobProcess
from clickstream.triggers.streaming_job import (
    DIED,
    FAILED,
    FINISHED,
    STALLED,
    STOP_REQUESTED,
    StreamingJobTrigger,
    assess,
)

LAUNCHED = 1_000_000
QUERIES = ("clickstream_counts", "clickstream_raw")
ALIVE = JobProcess(alive=True)


def observe(process=ALIVE, progress=None, control=None, now=LAUNCHED + 10_000):
    return assess(
        process=process,
        progress=progress if progress is not None else {q: {} for q in QUERIES},
        control=control or {},
        launched_ms=LAUNCHED,
        now_ms=now,
        stall_timeout_ms=60_000,
        startup_timeout_ms=300_000,
    )


def running(**fields):
    return {"started_ms": str(LAUNCHED + 5_000), "state": "running", **{k: str(v) for k, v in fields.items()}}


def test_a_starting_job_is_left_alone_until_its_startup_timeout():
    assert observe() is None
    verdict = observe(now=LAUNCHED + 301_000)
    assert verdict.status == STALLED and "has not started 301s after launch" in verdict.reason


def test_progress_and_idle_reports_both_count_as_signs_of_life():
    progress = {
        "clickstream_counts": running(updated_ms=LAUNCHED + 100_000),
        "clickstream_raw": running(batch_id=0, updated_ms=LAUNCHED + 5_000),
    }
    verdict = observe(progress=progress, now=LAUNCHED + 120_000)
    assert verdict.status == STALLED and verdict.reason.startswith("clickstream_raw reported no progress for 115s")
    progress["clickstream_raw"] = running(idle_ms=LAUNCHED + 110_000)
    assert observe(progress=progress, now=LAUNCHED + 120_000) is None


def test_a_started_query_gets_the_startup_timeout_for_its_first_micro_batch():
    """A relaunch's first batch restores the checkpointed state: slow, and not a stall until startup_timeout."""
    progress = {q: running() for q in QUERIES}  # started 5 s after launch, nothing reported since
    assert observe(progress=progress, now=LAUNCHED + 120_000) is None  # past stall_timeout, within startup
    verdict = observe(progress=progress, now=LAUNCHED + 301_000)
    assert verdict.status == STALLED and "has reported no micro-batch 301s after launch" in verdict.reason
    progress["clickstream_counts"] = running(batch_id=0, updated_ms=LAUNCHED + 20_000)  # its first batch: the
    verdict = observe(progress=progress, now=LAUNCHED + 81_000)  # stall timeout applies from then on
    assert verdict.status == STALLED and verdict.reason.startswith("clickstream_counts reported no progress for 61s")


def test_progress_left_by_a_previous_run_does_not_count():
    old = {"started_ms": str(LAUNCHED - 50_000), "state": "stopped", "updated_ms": str(LAUNCHED - 1)}
    progress = {q: old for q in QUERIES}
    assert observe(process=JobProcess(alive=False), progress=progress).status == DIED
    assert observe(progress=progress) is None  # still starting


def test_a_clean_exit_is_finished_and_an_unclean_one_died_with_its_exit_code():
    stopped = {q: {**running(), "state": "stopped"} for q in QUERIES}
    assert observe(process=JobProcess(alive=False, returncode=0), progress=stopped).status == FINISHED
    half = {**stopped, "clickstream_raw": running()}
    verdict = observe(process=JobProcess(alive=False, returncode=137), progress=half)
    assert verdict.status == DIED and "with exit code 137" in verdict.reason


def test_a_failed_query_reports_its_error_once_the_job_exits():
    progress = {"clickstream_counts": {**running(), "state": "failed", "error": "boom"}, "clickstream_raw": running()}
    assert observe(progress=progress) is None  # the job is winding down
    verdict = observe(process=JobProcess(alive=False), progress=progress)
    assert verdict.status == FAILED and verdict.error == "clickstream_counts: boom"


def test_only_a_stop_request_made_after_launch_counts():
    stale = {"command": "stop", "requested_ms": str(LAUNCHED - 1)}
    assert observe(control=stale) is None
    fresh = {"command": "stop", "requested_ms": str(LAUNCHED + 1), "reason": "maintenance"}
    verdict = observe(control=fresh)
    assert verdict.status == STOP_REQUESTED and verdict.reason == "stop requested: maintenance"


def test_serialize_names_an_importable_class_and_round_trips():
    job = {"pid": 1, "create_time": 2.0, "log_path": "/x.log", "launched_ms": 3, "application": "app.py"}
    trigger = StreamingJobTrigger(job=job, redis_conn_id="r", stall_timeout_s=9, poll_interval_s=1)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    assert module == "clickstream.triggers.streaming_job"
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["job"] == job and kwargs["stall_timeout_s"] == 9


def test_on_another_host_the_queries_states_decide():
    elsewhere = JobProcess(alive=None)
    stopped = {q: {**running(), "state": "stopped"} for q in QUERIES}
    assert observe(process=elsewhere, progress=stopped).status == FINISHED
    failed = {**stopped, "clickstream_raw": {**running(), "state": "failed", "error": "boom"}}
    assert observe(process=elsewhere, progress=failed).status == FAILED
    quiet = {q: running(updated_ms=LAUNCHED + 5_000) for q in QUERIES}
    assert observe(process=elsewhere, progress=quiet) is None
    assert observe(process=elsewhere, progress=quiet, now=LAUNCHED + 70_000).status == STALLED


def _stop_as_a_user(proc: subprocess.Popen) -> tuple[float, str]:
    """The trigger's on_kill on ``proc``'s job: how long it took, and what the process printed after 'up'."""
    started = time.monotonic()
    asyncio.run(StreamingJobTrigger(job=handle_of(proc).to_dict(), kill_grace_s=2.0).on_kill())
    elapsed = time.monotonic() - started
    assert not psutil.pid_exists(proc.pid)  # gone, and reaped (the handle reaps a child of its own process)
    assert proc.stdout is not None
    return elapsed, proc.stdout.read()


def test_a_user_stopping_the_deferred_task_stops_the_job_it_watches():
    """on_kill: SIGTERM first; a job that ignores it loses its whole process group after the grace."""
    elapsed, said = _stop_as_a_user(job_process(ignores_sigterm=False))
    assert said == "term\n" and elapsed < 2.0  # stopped through its own SIGTERM handler, within the grace
    elapsed, said = _stop_as_a_user(job_process(ignores_sigterm=True))
    assert said == "" and elapsed >= 2.0  # killed once the grace ran out


def test_a_job_on_another_host_is_not_signalled_here():
    proc = job_process(ignores_sigterm=False)
    try:
        asyncio.run(StreamingJobTrigger(job=handle_of(proc, host="another-host").to_dict()).on_kill())
        assert proc.poll() is None  # this host's pid says nothing about a process over there
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
