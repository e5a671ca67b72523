"""Real processes standing in for a detached spark-submit: what stopping a job does to a process group."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil

from clickstream.spark_job import SparkJobHandle


def job_process(ignores_sigterm: bool) -> subprocess.Popen:
    """A real process in a session of its own, as spark-submit is started; it says when it is set up, and
    when SIGTERM reaches it (unless it ignores it)."""
    handler = "signal.SIG_IGN" if ignores_sigterm else "lambda *_: (print('term', flush=True), sys.exit(0))"
    code = f"import signal, sys, time; signal.signal(signal.SIGTERM, {handler}); print('up', flush=True); time.sleep(9)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    return proc


def handle_of(proc: subprocess.Popen, host: str | None = None) -> SparkJobHandle:
    """``proc`` as the handle a launch returns (on this host unless ``host`` says otherwise)."""
    return SparkJobHandle(
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        log_path="",
        launched_ms=0,
        application="streaming_job.py",
        host=host or socket.gethostname(),
    )
