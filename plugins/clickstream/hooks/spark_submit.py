"""Submitting a long-running Spark application that outlives the task that started it.

:class:`SparkSubmitHook.submit` waits for spark-submit to exit, which holds a worker slot for as long
as a streaming job runs. :class:`DetachedSparkSubmitHook` builds the same command from ``spark_default``
(the provider's own builder) and starts it in its own session, with its output in a log file, so the
task can defer and a trigger can watch the job through the :class:`~clickstream.spark_job.SparkJobHandle`
it returns.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import psutil
from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

from clickstream.spark_job import SparkJobHandle


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
