"""A fixture that runs the streaming application for real and always stops it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import spark_jobs

from devstack.processes import stop_process


@pytest.fixture
def streaming_job(kafka_broker, redis_server, tmp_path):
    """Returns start(topic, dead_letter_topic, *extra_args, checkpoint=None) -> Popen; stops what it started."""
    started: list[subprocess.Popen] = []

    def start(topic: str, dead_letter_topic: str, *extra: str, checkpoint: Path | None = None) -> subprocess.Popen:
        args = [
            "--bootstrap-servers", kafka_broker.bootstrap_servers,
            "--topic", topic,
            "--dead-letter-topic", dead_letter_topic,
            "--checkpoint-dir", str(checkpoint or tmp_path / "checkpoint"),
            *extra,
        ]  # fmt: skip
        log = tmp_path / f"streaming-{len(started)}.log"
        proc = spark_jobs.submit(
            spark_jobs.STREAMING_APP,
            args,
            log,
            env={"REDIS_URL": redis_server.url("writer"), **spark_jobs.kafka_env(kafka_broker, "streaming")},
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process(proc, grace=30)
