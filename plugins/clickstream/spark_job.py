"""A detached Spark job, found again from its handle: is it running, stop it, kill it, read its log.

:class:`~clickstream.hooks.spark_submit.DetachedSparkSubmitHook` starts spark-submit in a session of its
own and returns a :class:`SparkJobHandle` (pid plus process start time, so a recycled pid is never
mistaken for the job). The handle is JSON-able: it travels in trigger kwargs and events, and whoever holds
it (the trigger, the operator after a restart, ``make down``) controls the job through it.

Process control needs the driver on this host: Spark ``local[*]`` or client deploy mode, as on the local
stack. Elsewhere (a triggerer in another container) :meth:`SparkJobHandle.process` answers "unknown",
and the trigger goes by the progress in Redis alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil


@dataclass(frozen=True)
class JobProcess:
    """Whether the job's process still runs (None: unknown, it runs on another host); ``returncode`` is
    known only when this process started it."""

    alive: bool | None
    returncode: int | None = None


@dataclass(frozen=True)
class SparkJobHandle:
    """What identifies a detached spark-submit, and the ways to control it."""

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

    @classmethod
    def running_from(cls, applications: str | Path, airflow_home: str | None = None) -> list[SparkJobHandle]:
        """The spark-submit processes on this host whose application lives under ``applications``.

        For stopping jobs whose handles are lost (``make down``); their log path is unknown. With
        ``airflow_home``, only the jobs an Airflow with that home started: another stack's (or a test's)
        jobs from the same checkout are left alone.
        """
        prefix = str(applications)
        jobs = []
        for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
            cmdline = proc.info["cmdline"] or []
            app = next((part for part in cmdline if part.startswith(prefix)), None)
            if app is None or not any("SparkSubmit" in part for part in cmdline):
                continue
            if airflow_home is not None and _environment(proc).get("AIRFLOW_HOME") != airflow_home:
                continue
            created = proc.info["create_time"]
            jobs.append(cls(proc.info["pid"], created, "", int(created * 1000), app, socket.gethostname()))
        return jobs

    def process(self) -> JobProcess:
        """Is the job's spark-submit still running? Cheap (reads /proc), so a trigger may call it on its loop."""
        if not self.local:
            return JobProcess(alive=None)
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return JobProcess(alive=False)  # the pid was recycled: our job is long gone
            if proc.status() != psutil.STATUS_ZOMBIE:
                return JobProcess(alive=True)
        except psutil.NoSuchProcess:
            return JobProcess(alive=False)
        # A zombie is a finished child of this very process (as under `airflow dags test`): reap it.
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return JobProcess(alive=False)
        return JobProcess(alive=False, returncode=os.waitstatus_to_exitcode(status) if pid else None)

    def python_driver(self) -> psutil.Process | None:
        """The application's Python process: a child of spark-submit's JVM, and the one that handles SIGTERM."""
        name = Path(self.application).name
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if name in " ".join(child.cmdline()):
                        return child
        return None

    def stop(self, grace_s: float = 60.0) -> bool:
        """Ask the job to stop after its running batch (SIGTERM to its driver); kill its group after ``grace_s``.

        Returns whether it stopped within the grace period. Blocking: call it from a task, not a trigger.
        """
        self._require_local()
        if not self.process().alive:
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGCONT)  # a stopped (SIGSTOP) job cannot handle SIGTERM
        driver = self.python_driver()
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if driver is not None:
                driver.send_signal(signal.SIGTERM)
            else:
                os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not self.process().alive:
                return True
            time.sleep(0.5)
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL the job's whole process group (spark-submit's JVM and the Python driver)."""
        self._require_local()
        if self.process().alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while self.process().alive and time.monotonic() < deadline:
            time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError as exc:
            return f"(no log at {self.log_path!r}: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def _require_local(self) -> None:
        if not self.local:
            raise RuntimeError(f"the job runs on {self.host}, not here ({socket.gethostname()}): stop it there")


def missing_application(application: str, script: str) -> str | None:
    """What to fix when ``application`` is neither a URL spark-submit fetches nor a file here, else None.

    Checked by the operators before spark-submit, whose own error for a missing file is a Java stack trace.
    """
    if "://" in application or Path(application).is_file():
        return None
    return (
        f"the Spark application {application} does not exist: point `application` at "
        f"include/spark/{script} as deployed next to your DAGs"
    )


def _environment(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except psutil.Error:
        return {}
