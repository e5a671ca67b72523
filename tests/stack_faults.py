"""Faults on the running local stack, for tests/integration/test_running_stack.py: the stack under test, the
producer CLI with its ground truth, and one function per fault.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import redis
from spark_jobs import all_counts
from stack_helpers import LocalStack

from clickstream import redis_layout
from clickstream.producer_cli import EXIT_INTERRUPTED
from clickstream.schema import window_label
from clickstream.traffic import TrafficConfig, ground_truth
from devstack.processes import wait_until
from devstack.stack import log_tail

RATE = 1000  # events/s from the producer CLI
MAX_PRODUCER_S = 1800
AFTER_FAULT_S = 10.0  # the producer sends on this long after a fault is over, then is stopped


def drivers(checkpoints: Path) -> list[psutil.Process]:
    """One process per streaming job running on a checkpoint under ``checkpoints``: its process group's leader.

    A job is a process group (spark-submit is started in a session of its own), whose members (the
    spark-class script, the launcher JVM, the driver JVM, its Python) all name the checkpoint.
    """
    groups: dict[int, psutil.Process] = {}
    under = f"{checkpoints}{os.sep}"
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(part.startswith(under) for part in cmdline) and any("SparkSubmit" in part for part in cmdline):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                groups.setdefault(os.getpgid(proc.pid), proc)
    return [psutil.Process(pgid) if psutil.pid_exists(pgid) else proc for pgid, proc in groups.items()]


class Producer:
    """The producer CLI in the background, its ground truth rebuilt from the config it reports."""

    def __init__(self, env: dict[str, str], seed: int, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clickstream.producer_cli",
                "--conn-id",
                "kafka_default",
                "--rps",
                str(RATE),
                "--duration",  # a bound in case the test dies; it is stopped with Ctrl-C (SIGINT) well before
                str(MAX_PRODUCER_S),
                "--seed",
                str(seed),
                "--json",
                "--progress",  # a line on stderr every 5 s: tells the test the producer is past its broker check
            ],
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),  # noqa: SIM115 (closed with the process)
            env=env,
            text=True,
        )

    def wait_delivering(self, timeout: float = 90) -> None:
        """Block until the broker has acknowledged some of this producer's events.

        A fault injected before that would hit the producer's start-up check (fail within 15 s if no
        broker answers), not the stream it is meant to hit.
        """
        deadline = time.monotonic() + timeout
        while not re.search(r"delivered [1-9]", self.log.read_text(errors="replace")):
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the producer delivered nothing within {timeout:.0f}s"
            time.sleep(0.5)

    def stop_and_truth(self, timeout: float) -> tuple[Counter, dict]:
        """Ctrl-C, as a user stops it: it stops sending, waits for every delivery report, prints its summary."""
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == EXIT_INTERRUPTED, out + self.log.read_text()[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        delivery, digest = summary["delivery"], summary["ground_truth"]
        assert delivery["delivered"] == delivery["sent"] == digest["count"], delivery
        truth = ground_truth(TrafficConfig.from_dict(digest["config"]), digest["count"])
        cells = Counter({(page, window_label(w)): n for (page, w), n in truth.window_counts.items()})
        return cells, {"sent": delivery["sent"], "rate": delivery.get("rate"), "valid": truth.valid}


def rewriting(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return bool(info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"])


def batch_id(client: redis.Redis) -> int:
    """The newest micro-batch the streaming job has reported."""
    return int(client.hget(redis_layout.progress_key(redis_layout.COUNTS_QUERY), "batch_id") or -1)


def wait_until_exact(client: redis.Redis, truth: Counter, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if all_counts(client) == truth:
                return time.monotonic() - started
        except redis.exceptions.ConnectionError:
            pass
        time.sleep(1)
    cells = all_counts(client)
    wrong = {k: (cells.get(k), truth.get(k)) for k in set(cells) | set(truth) if cells.get(k) != truth.get(k)}
    raise AssertionError(f"Redis differs from the ground truth in {len(wrong)} cells, e.g. {list(wrong.items())[:5]}")


class FaultedStack:
    """The stack under test, its streaming job, and the ground truth of every event delivered so far.

    The stack may hold counts from the tests before this one: Redis must equal those plus the ground truth.
    """

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        # The producer CLI logs in as the stack's producer principal, through kafka_default as `make up` sets it.
        self.env = {**stack.env, **stack.kafka().airflow_connections()}
        # Every Kafka cluster's checkpoints: a driver on any of them counts into the same Redis.
        self.checkpoint = stack.state / "airflow" / "clickstream" / "checkpoints"
        self.client = stack.redis("admin")
        self.truth: Counter = all_counts(self.client)
        self.table: list[dict] = []
        self.most_drivers = 0
        self._watching = threading.Event()

    def drivers(self) -> list[psutil.Process]:
        return drivers(self.checkpoint)

    def supervisorctl(self, *args: str) -> str:
        return self.stack.supervisorctl(*args)

    def kill_part(self, name: str) -> None:
        """SIGKILL a supervised part and keep it down until started again.

        supervisord restarts what dies at once; a stop sent while that restart is still STARTING can hang for
        its whole stopwaitsecs (seen: 24 s with Redis serving all along), so the stop waits for it to settle.
        """
        pid = int(self.supervisorctl("pid", name).strip())
        os.kill(pid, signal.SIGKILL)

        def settled() -> bool:  # supervisord has seen the death, and its restart (if any) is past STARTING
            status = self.supervisorctl("status", name)
            return "STARTING" not in status and f"pid {pid}," not in status

        assert wait_until(settled, 30), f"{name} did not settle after SIGKILL: {self.supervisorctl('status', name)}"
        self.supervisorctl("stop", name)

    def start_streaming_job(self) -> None:
        api = self.stack.api
        api.wait_for_dag("clickstream_streaming", 120)
        api.unpause("clickstream_streaming")
        self.run_id = api.trigger(
            "clickstream_streaming", {"max_restarts": 10, "stall_timeout_s": 90, "trigger_interval": "1 second"}
        )
        assert wait_until(lambda: bool(self.drivers()), 240, interval=1), "the streaming job did not start in 240s"
        threading.Thread(target=self._watch_drivers, daemon=True).start()

    def _watch_drivers(self) -> None:  # a second driver on one checkpoint would double-count: it must never run
        while not self._watching.is_set():
            self.most_drivers = max(self.most_drivers, len(self.drivers()))
            time.sleep(0.3)

    def inject(self, name: str, fault: Callable[[FaultedStack], dict | None], seed: int) -> None:
        """``fault`` while the producer sends, which goes on ``AFTER_FAULT_S`` past the fault's end; then Redis
        must equal the ground truth."""
        producer = Producer(self.env, seed, self.stack.root / f"producer-{seed}.log")
        producer.wait_delivering()  # mid-stream
        details = fault(self) or {}  # what the fault saw: leaders, ISRs, executors before and after
        time.sleep(AFTER_FAULT_S)  # events that arrive after the recovery too
        truth, sent = producer.stop_and_truth(timeout=360)  # its delivery timeout is 300 s
        self.truth.update(truth)
        recovered_s = wait_until_exact(self.client, self.truth, timeout=240)
        cells = all_counts(self.client)
        self.table.append(
            {
                "fault": name,
                "recovered_s": round(recovered_s, 1),
                "delivered": sent["sent"],
                "redis_total": sum(cells.values()),
                "valid_total": sum(self.truth.values()),
                "cells_differing": sum(1 for k in set(cells) | set(self.truth) if cells[k] != self.truth[k]),
                **details,
            }
        )

    def check_counts_and_drivers(self) -> None:
        self._watching.set()
        print("\n" + "\n".join(json.dumps(row) for row in self.table))
        for row in self.table:
            assert row["cells_differing"] == 0 and row["redis_total"] == row["valid_total"], row
        assert self.most_drivers == 1, f"{self.most_drivers} drivers ran on one checkpoint at once"

    def log_lines(self, text: str, folder: str = "") -> list[str]:
        """The lines holding ``text`` in every file under Airflow's log folder (or its ``folder``)."""
        logs = (self.stack.state / "airflow" / "logs" / folder).rglob("*")
        return [
            line
            for log in logs
            if log.is_file()
            for line in log.read_text(errors="replace").splitlines()
            if text in line
        ]

    def spark_log_lines(self, text: str) -> list[str]:
        return self.log_lines(text, "clickstream-spark")

    def email_subjects(self) -> list[str]:
        return [
            str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["Subject"])
            for p in sorted((self.stack.state / "mail" / "new").glob("*"))
        ]

    def mark_streaming_task_failed(self) -> None:
        """Mark the deferred task failed, as a user would in the UI: the triggerer stops the job (its trigger's
        on_kill) and nothing relaunches it."""
        self._watching.set()
        self.stack.api.set_task_state("clickstream_streaming", self.run_id, "stream_clicks", "failed")
        gone = wait_until(lambda: not self.drivers(), 90, interval=1)
        assert gone, f"the streaming job still runs 90 s after its task was marked failed: {self.drivers()}"
        said = self.log_lines("stopped by a user")
        print("on_kill:", said)
        assert said, "no log says the trigger's on_kill stopped the job"
        assert self.stack.api.wait_for_run("clickstream_streaming", self.run_id, 60) == "failed"
        time.sleep(10)  # a relaunch would come within seconds
        assert not self.drivers(), "the streaming job was relaunched after its task was marked failed"

    def stop_streaming_job(self) -> None:
        """Ask the job to stop as a user would; the run must end in success."""
        self._watching.set()
        redis_layout.request_stop(self.client, reason="fault test done")
        assert self.stack.api.wait_for_run("clickstream_streaming", self.run_id, 180) == "success"


def kill_driver_three_times(run: FaultedStack) -> None:
    for _ in range(3):
        jvm = run.drivers()[0]
        os.killpg(os.getpgid(jvm.pid), signal.SIGKILL)
        restarted = wait_until(lambda: any(d.pid != jvm.pid for d in run.drivers()), 180)  # noqa: B023
        assert restarted, "the job was not restarted"
        time.sleep(5)  # let the new driver get going before the next kill


def kill_triggerer_and_restart_scheduler(run: FaultedStack) -> None:
    os.kill(int(run.supervisorctl("pid", "airflow-triggerer").strip()), signal.SIGKILL)  # supervisord restarts it
    time.sleep(5)
    run.supervisorctl("restart", "airflow-scheduler")


def kill_kafka_for_20s(run: FaultedStack) -> dict:
    """The broker down for 20 s; then it must serve again within the producer's delivery timeout.

    Its restart recovers the logs of an unclean shutdown: on a loaded machine a broker still refused
    connections over a minute after its start.
    """
    run.kill_part("kafka")
    time.sleep(20)
    started = time.monotonic()
    out = run.supervisorctl("start", "kafka")
    broker = run.stack.kafka()
    if not wait_until(broker.healthy, 240, interval=2):
        tail = log_tail(run.stack.state / "logs" / "kafka.log")
        raise AssertionError(f"Kafka did not serve again within 240 s of its start ({out.strip()}):\n{tail}")
    return {"kafka_back_s": round(time.monotonic() - started, 1)}


def kill_redis_for_30s(run: FaultedStack) -> None:
    run.kill_part("redis")
    time.sleep(30)
    run.supervisorctl("start", "redis")


def bring_redis_back_with_less(run: FaultedStack) -> None:
    """As after an OS crash inside appendfsync's window, or a failover to a lagging replica: Redis comes back
    without the batches it acknowledged after its append-only file was copied."""
    aof = run.stack.state / "redis" / "appendonlydir"
    run.client.bgrewriteaof()
    assert wait_until(lambda: not rewriting(run.client), 60), "the AOF rewrite did not finish"
    copied_at = batch_id(run.client)
    shutil.copytree(aof, run.stack.root / "aof-copy")
    # Ten more one-second batches land in Redis, and in Spark's checkpoint.
    assert wait_until(lambda: batch_id(run.client) >= copied_at + 10, 60), "no batches after the copy"
    run.kill_part("redis")
    shutil.rmtree(aof)
    shutil.copytree(run.stack.root / "aof-copy", aof)
    run.supervisorctl("start", "redis")
