"""SparkJobHandle against real processes: a stand-in for spark-submit started the way the hook starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clickstream.spark_job import SparkJobHandle, missing_application

# Stands in for spark-submit: its own session, a child "driver" that names the application and stops on
# SIGTERM after a moment, as the real driver does once its running batch is done.
# Each stand-in prints "ready" once its SIGTERM handler is in place: a signal before that would find Python's
# default handler and prove nothing about the handle.
DRIVER = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.5), sys.exit(0)));"
    " print('ready', flush=True); time.sleep(600)"
)


def start(tmp_path: Path, driver: str = DRIVER) -> SparkJobHandle:
    app = tmp_path / "clickstream_streaming.py"
    app.write_text(driver)
    log = tmp_path / "job.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", f"import subprocess, sys; print('started', flush=True); "
             f"sys.exit(subprocess.call([sys.executable, {str(app)!r}]))"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    handle = SparkJobHandle(proc.pid, psutil.Process(proc.pid).create_time(), str(log), int(time.time() * 1000),
                            str(app), socket.gethostname())  # fmt: skip
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ready" in log.read_text(), log.read_text()
    return handle


def test_a_handle_round_trips_through_json_and_finds_its_process(tmp_path):
    handle = start(tmp_path)
    try:
        again = SparkJobHandle.from_dict(json.loads(json.dumps(handle.to_dict())))
        assert again == handle and again.process().alive is True
        assert handle.python_driver() is not None
        assert "started" in handle.log_tail()
    finally:
        handle.kill()
    assert handle.process().alive is False


def test_stop_lets_the_driver_finish_and_reports_it(tmp_path):
    handle = start(tmp_path)
    assert handle.stop(grace_s=20) is True
    assert handle.process().alive is False


def test_stop_kills_a_driver_that_ignores_sigterm_after_the_grace(tmp_path):
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
        " time.sleep(600)"
    )
    handle = start(tmp_path, stubborn)
    started = time.monotonic()
    assert handle.stop(grace_s=1) is False
    assert handle.process().alive is False and time.monotonic() - started < 20


def test_a_recycled_pid_is_not_the_job(tmp_path):
    handle = start(tmp_path)
    try:
        other = SparkJobHandle(handle.pid, handle.create_time - 100, "", 0, handle.application, handle.host)
        assert other.process().alive is False
    finally:
        handle.kill()


def test_a_job_on_another_host_is_unknown_here_and_cannot_be_stopped_from_here():
    remote = SparkJobHandle(1, 0.0, "", 0, "app.py", host="another-host")
    assert remote.process().alive is None
    with pytest.raises(RuntimeError, match="the job runs on another-host"):
        remote.stop()


def test_running_jobs_are_found_by_their_application_folder(tmp_path):
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "org.apache.spark.deploy.SparkSubmit",
         str(tmp_path / "apps" / "clickstream_streaming.py")],
        start_new_session=True,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow")},
    )  # fmt: skip
    try:
        time.sleep(0.2)
        found = SparkJobHandle.running_from(tmp_path / "apps")
        assert [(j.pid, Path(j.application).name) for j in found] == [(fake.pid, "clickstream_streaming.py")]
        assert SparkJobHandle.running_from(tmp_path / "elsewhere") == []
        # Only the jobs of the Airflow asked about: another stack's (or a test's) are not this one's to stop.
        assert [j.pid for j in SparkJobHandle.running_from(tmp_path / "apps", str(tmp_path / "airflow"))] == [fake.pid]
        assert SparkJobHandle.running_from(tmp_path / "apps", str(tmp_path / "another-airflow")) == []
    finally:
        fake.kill()
        fake.wait()


def test_the_log_tail_of_a_missing_log_says_so():
    assert "no log at '/nonexistent/job.log'" in SparkJobHandle(1, 0.0, "/nonexistent/job.log", 0, "a.py").log_tail()


def test_a_missing_application_is_named_with_the_script_to_point_at(tmp_path):
    app = tmp_path / "clickstream_batch.py"
    assert "include/spark/clickstream_batch.py" in missing_application(str(app), "clickstream_batch.py")
    assert str(app) in missing_application(str(app), "clickstream_batch.py")
    app.write_text("")
    assert missing_application(str(app), "clickstream_batch.py") is None
    assert missing_application("s3://bucket/clickstream_batch.py", "clickstream_batch.py") is None  # fetched
