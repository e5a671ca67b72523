"""Submitting a long-running Spark application that outlives the task that started it.

:class:`SparkSubmitHook.submit` waits for spark-submit to exit, which holds a worker slot for as long
as a streaming job runs. :class:`DetachedSparkSubmitHook` builds the same command from ``spark_default``
(the provider's own builder) and starts it in its own session, with its output in a log file, so the
task can defer and a trigger can watch the job. The job is found again from a :class:`SparkJobHandle`
(pid plus process start time, so a recycled pid is never mistaken for the job).

Liveness by pid needs the driver on the triggerer's host: Spark ``local[*]`` or client deploy mode,
as on the local stack. Elsewhere (a triggerer in another container) the trigger goes by the progress
in Redis: the queries' own stopped/failed states, and the stall check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook


@dataclass(frozen=True)
class SparkJobHandle:
    """What identifies a detached spark-submit: JSON-able, so it travels in trigger kwargs and events."""

    pid: int
    create_time: float
    log_path: str
    launched_ms: int
    application: str
    host: str = ""  # where spark-submit runs: its pid means nothing on another host

    @property
    def local(self) -> bool:
        return not self.host or self.host == socket.gethostname()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SparkJobHandle:
        return cls(**data)


@dataclass(frozen=True)
class JobProcess:
    """Whether the job's process still runs (None: unknown, it runs on another host); ``returncode`` is
    known only when this process started it."""

    alive: bool | None
    returncode: int | None = None


class DetachedSparkSubmitHook(SparkSubmitHook):
    """The Spark provider's hook, with a submit that returns at once instead of waiting for the job."""

    def submit_detached(self, application: str, log_path: str | Path) -> SparkJobHandle:
        command = self._build_spark_submit_command(application)
        env = {**os.environ, **(self._env or {})}
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log.info("Starting detached: %s (output in %s)", self._mask_cmd(command), log_path)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group: outlives the task, stopped as a whole
            )
        return SparkJobHandle(
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            log_path=str(log_path),
            launched_ms=int(time.time() * 1000),
            application=str(application),
            host=socket.gethostname(),
        )


def job_process(handle: SparkJobHandle) -> JobProcess:
    """Is the job's spark-submit still running? Cheap (reads /proc), so a trigger may call it on its loop.

    From another host (a triggerer in its own container) the answer is unknown, and the trigger goes by
    the progress in Redis alone.
    """
    if not handle.local:
        return JobProcess(alive=None)
    try:
        proc = psutil.Process(handle.pid)
        if abs(proc.create_time() - handle.create_time) > 1.0:
            return JobProcess(alive=False)  # the pid was recycled: our job is long gone
        if proc.status() != psutil.STATUS_ZOMBIE:
            return JobProcess(alive=True)
    except psutil.NoSuchProcess:
        return JobProcess(alive=False)
    # A zombie is a finished child of this very process (as under `airflow dags test`): reap it.
    try:
        pid, status = os.waitpid(handle.pid, os.WNOHANG)
    except ChildProcessError:
        return JobProcess(alive=False)
    return JobProcess(alive=False, returncode=os.waitstatus_to_exitcode(status) if pid else None)


def python_driver(handle: SparkJobHandle) -> psutil.Process | None:
    """The application's Python process: a child of spark-submit's JVM, and the one that handles SIGTERM."""
    name = Path(handle.application).name
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(handle.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if name in " ".join(child.cmdline()):
                    return child
    return None


def stop_job(handle: SparkJobHandle, grace_s: float = 60.0) -> bool:
    """Ask the job to stop after its running batch (SIGTERM to its driver); kill its group after ``grace_s``.

    Returns whether it stopped within the grace period. Blocking: call it from a task, not a trigger.
    """
    if not handle.local:
        raise RuntimeError(f"the job runs on {handle.host}, not here ({socket.gethostname()}): stop it there")
    if not job_process(handle).alive:
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(handle.pid, signal.SIGCONT)  # a stopped (SIGSTOP) job cannot handle SIGTERM
    driver = python_driver(handle)
    with contextlib.suppress(psutil.Error, ProcessLookupError):
        if driver is not None:
            driver.send_signal(signal.SIGTERM)
        else:
            os.kill(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not job_process(handle).alive:
            return True
        time.sleep(0.5)
    kill_job(handle)
    return False


def kill_job(handle: SparkJobHandle) -> None:
    """SIGKILL the job's whole process group (spark-submit's JVM and the Python driver)."""
    if not handle.local:
        raise RuntimeError(f"the job runs on {handle.host}, not here ({socket.gethostname()}): stop it there")
    if job_process(handle).alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while job_process(handle).alive and time.monotonic() < deadline:
        time.sleep(0.2)


def log_tail(handle: SparkJobHandle, lines: int = 40) -> str:
    try:
        text = Path(handle.log_path).read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {handle.log_path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])
