"""What scale costs, measured: the Spark standalone cluster beside ``local[*]``, replication factor 3 beside 1,
and what Redis spends per million events, all in one run on this machine.

Started here on free loopback ports in a temporary folder, never the `make up` stack: the cluster topology's
three KRaft nodes, secured as the stack's (:mod:`devstack.kafka_cluster`: RF 3 and min.insync.replicas 2 by
default), a Spark standalone master with two one-core 2g workers (:mod:`devstack.spark_cluster`), and a Redis.

1. Streaming, cluster beside ``local[*]``: ``--events`` events are loaded once into one topic (RF 3, min ISR
   2, ``--partitions`` partitions, by default one per executor core), then the streaming application drains
   it from the start with ``--available-now``, in micro-batches of at most ``--max-offsets-per-trigger``,
   twice over the same events: with ``local[*]`` (driver and executor threads in one JVM, as the single-node
   stack runs it) and on the cluster's master (client mode: the driver here, one executor on each worker).
   Each run gets a fresh checkpoint and an emptied Redis. Its rate is the events of batches 1..n over the
   time from batch 0's progress to the last batch's, as the driver stamps them in Redis (batch 0 pays for
   start-up: executors, code generation, Kafka consumers; start-up is printed apart). Each run must leave
   Redis equal to the ground truth of the loaded events, cell by cell, or the run is missed.
2. Redis per million events, from the same two runs: the ``INFO commandstats`` calls (the commands the
   sink's scripts run included; the benchmark's own progress polls taken out) and the redis-server
   process's CPU time (user + system, from psutil; Redis's idle housekeeping and those polls included),
   each over the whole run, divided by the events counted. Beside them, the time Redis spent inside the
   sink's scripts (their ``usec`` in the same stats): the part that grows with the work. The sink writes
   once per micro-batch, so all of these scale with the batches and the (page, window) cells each batch
   touches, not with events: they are printed per batch too.
3. Producer, RF 3 beside RF 1: clickstream's producer (confluent-kafka, :mod:`bench.producer`'s like-for-like
   path: acks=all, idempotence, lz4, records generated beforehand) and Kafka's ProducerPerformance with the
   same settings, as the ``producer`` principal over SASL/SCRAM, each into fresh 3-partition topics of RF 1
   (min ISR 1) and RF 3 (min ISR 2) on the same cluster, in interleaved rounds after a warm-up round. The
   median round is reported, and RF 3 / RF 1 is the median of the rounds' own ratios (a round's two runs
   are seconds apart, so a drift in the machine's pace between rounds cancels out).

No targets: the figures and their ratios (cluster / ``local[*]``, RF 3 / RF 1) are what a capacity model is
built from. Only a run that does not count every event exactly (or a cluster run without an executor on
each worker) is reported as missed.

``CLICKSTREAM_TOPOLOGY=cluster make bench`` runs it after the others; plain `make bench` leaves it out.
``python -m bench.run cluster`` (or ``python -m bench.cluster``, with options) runs it alone: about 5-6
minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from bench import exit_if_missed
from bench.cluster_report import report
from bench.producer import (
    Round,
    median_round,
    run_confluent,
    run_kafka_tool,
    traffic,
    write_payloads,
    write_tool_config,
)
from bench.streaming import STREAMING_APP, spark_job
from clickstream import redis_layout
from clickstream.kafka_security import security_env
from clickstream.producing import BurstProducer
from clickstream.schema import window_label
from clickstream.traffic import GroundTruth, TrafficConfig, TrafficGenerator
from devstack.kafka_cluster import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, KafkaCluster, NodePorts
from devstack.ports import free_port
from devstack.processes import Program, running, running_together, stop_process
from devstack.redis_server import RedisServer
from devstack.spark_cluster import SparkAuth, SparkMaster, SparkWorker

NODES = 3
WORKERS = 2  # one core each, as the cluster topology's
EVENTS_TOPIC, DEAD_LETTERS_TOPIC = "bench-events", "bench-events-dlq"
POLL_S = 0.05  # progress polls: a micro-batch here takes a second or more
# Spark's daemons need little heap of their own; the executors get the workers' memory (as devstack/stack.py).
SPARK_DAEMON_ENV = {"SPARK_DAEMON_MEMORY": "512m", "SPARK_LOCAL_IP": "127.0.0.1"}
# The drivers bind to loopback, where the executors reach them (as `make up` sets for its Spark jobs).
DRIVER_ENV = {"SPARK_LOCAL_IP": "127.0.0.1"}


def command_stats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command since Redis started (``INFO commandstats``), those run inside scripts
    included (a script's own time includes theirs)."""
    return {
        name.removeprefix("cmdstat_"): (int(stats["calls"]), int(stats["usec"]))
        for name, stats in client.info("commandstats").items()
    }


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def counted(client: redis.Redis, truth: GroundTruth) -> dict[str, int]:
    """Redis's ``click_count:*`` cells against the ground truth: events counted, cells that differ."""
    expected = {(page, window_label(w)): n for (page, w), n in truth.window_counts.items()}
    pages = {p.decode() for p in client.smembers(redis_layout.PAGES_KEY)} | {page for page, _ in expected}
    cells = redis_layout.read_counts(client, sorted(pages))
    wrong = sum(1 for cell in set(cells) | set(expected) if cells.get(cell) != expected.get(cell))
    return {"events": sum(cells.values()), "cells": len(cells), "cells_wrong": wrong}


def drain(
    cluster: KafkaCluster,
    redis_server: RedisServer,
    redis_pid: int,
    workdir: Path,
    name: str,
    master: str,
    truth: GroundTruth,
    max_offsets: int,
    spark_master: SparkMaster | None = None,
    timeout_s: float = 900,
) -> dict[str, Any]:
    """The streaming application drains the events topic from its start (``--available-now``) with ``master``."""
    client = redis_server.client("admin")
    client.flushdb()
    poller = redis_server.client("admin")
    poller.ping()  # connected (and logged in) before the first count: from here on it sends only its polls
    stats_before, cpu_before = command_stats(client), cpu_seconds(redis_pid)
    args = ["--bootstrap-servers", cluster.bootstrap_servers, "--topic", EVENTS_TOPIC,
            "--dead-letter-topic", DEAD_LETTERS_TOPIC, "--checkpoint-dir", str(workdir / f"ckpt-{name}"),
            "--available-now", "--max-offsets-per-trigger", str(max_offsets)]  # fmt: skip
    log = workdir / f"streaming-{name}.log"
    key = redis_layout.progress_key(redis_layout.COUNTS_QUERY)
    batches: dict[int, tuple[int, int]] = {}  # batch id -> (progress stamped by the driver, epoch ms; input rows)
    polls, cores, next_look = 0, 0, 0.0

    def poll() -> None:
        nonlocal polls
        batch, rows, stamped = poller.hmget(key, "batch_id", "input_rows", "updated_ms")
        polls += 1
        if batch is not None:
            batches.setdefault(int(batch), (int(stamped), int(rows)))

    started, submitted_ms = time.monotonic(), time.time() * 1000
    driver_env = (
        DRIVER_ENV if spark_master is None else {**DRIVER_ENV, "SPARK_CONF_DIR": str(spark_master.auth.conf_dir)}
    )
    job = spark_job(STREAMING_APP, args, log, redis_server.url("writer"),
                    security_env(cluster.client_config("streaming")), master=master, extra_env=driver_env)  # fmt: skip
    try:
        while job.poll() is None:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"the {name} run did not drain the topic within {timeout_s:.0f}s; see {log}")
            poll()
            if spark_master is not None and time.monotonic() >= next_look:  # the cores the master granted it
                apps = (spark_master.state() or {}).get("activeapps", [])
                cores = max([cores, *(int(app.get("cores", 0)) for app in apps)])
                next_look = time.monotonic() + 1
            time.sleep(POLL_S)
    finally:
        stop_process(job, grace=60)
    wall_s = time.monotonic() - started
    poll()  # the last batch's progress, written before the driver exited
    stats_after, cpu_after = command_stats(client), cpu_seconds(redis_pid)
    if job.returncode != 0:
        raise RuntimeError(f"the {name} run failed ({job.returncode}): {log.read_text(errors='replace')[-3000:]}")
    calls = {cmd: n - stats_before.get(cmd, (0, 0))[0] for cmd, (n, _) in stats_after.items() if cmd != "info"}
    script_usec = sum(
        usec - stats_before.get(cmd, (0, 0))[1] for cmd, (_, usec) in stats_after.items() if cmd in ("eval", "evalsha")
    )
    calls["hmget"] = calls.get("hmget", 0) - polls  # the benchmark's own
    calls = {cmd: n for cmd, n in sorted(calls.items()) if n > 0}
    if 0 not in batches:
        raise RuntimeError(f"the {name} run's first micro-batch was never seen in Redis")
    last = max(batches)
    (first_ms, first_rows), (last_ms, _) = batches[0], batches[last]
    result = counted(client, truth)
    events = result["events"]
    seconds = (last_ms - first_ms) / 1000
    return {
        "master": master,
        "executor_cores": cores if spark_master is not None else os.cpu_count(),
        "batches": last + 1,
        "batch_rows": {batch: rows for batch, (_, rows) in sorted(batches.items())},  # those the polls saw
        "events_per_s": (truth.count - first_rows) / seconds if seconds > 0 else float("nan"),
        "measured_events": truth.count - first_rows,
        "measured_s": seconds,
        "to_batch_0_s": (first_ms - submitted_ms) / 1000,  # start-up, and batch 0's own events
        "wall_s": wall_s,
        **{f"counted_{k}": v for k, v in result.items()},
        "redis_calls": calls,
        "redis_commands": sum(calls.values()),
        "redis_cpu_s": cpu_after - cpu_before,
        "redis_commands_per_m_events": sum(calls.values()) / events * 1e6 if events else float("nan"),
        "redis_cpu_s_per_m_events": (cpu_after - cpu_before) / events * 1e6 if events else float("nan"),
        "redis_commands_per_batch": sum(calls.values()) / (last + 1),
        "redis_cpu_ms_per_batch": (cpu_after - cpu_before) * 1000 / (last + 1),
        # Redis's own time in the sink's scripts: the work that grows with the cells a batch touches.
        "redis_script_s": script_usec / 1e6,
        "redis_script_ms_per_batch": script_usec / 1000 / (last + 1),
    }


def producer_rates(cluster: KafkaCluster, workdir: Path, events: int, rounds: int) -> dict[str, Any]:
    """clickstream's producer and Kafka's tool into fresh topics of RF 1 and RF 3: median rounds, and RF 3 / RF 1."""
    admin = AdminClient(cluster.client_config("ops"))
    numbers = iter(range(10_000))

    def fresh_topic(rf: int) -> str:
        name = f"bench-rf{rf}-{next(numbers)}"
        cluster.grant(events=name)
        isr = str(min(rf, MIN_INSYNC_REPLICAS))
        new = NewTopic(name, num_partitions=3, replication_factor=rf, config={"min.insync.replicas": isr})
        admin.create_topics([new])[name].result(30)
        return name

    def once(rf: int, send: Callable[[str], Round]) -> Round:
        topic = fresh_topic(rf)
        try:
            return send(topic)
        finally:
            admin.delete_topics([topic])[topic].result(30)  # its data goes: the disk holds one run at a time

    sasl = cluster.client_config("producer")
    tool_config = write_tool_config(workdir / "producer.properties", sasl)
    payloads = workdir / "payloads.txt"
    record_bytes = write_payloads(payloads)
    prepared = list(TrafficGenerator(traffic(events)).records(events))
    tools: dict[str, Callable[[str], Round]] = {
        "confluent": lambda topic: run_confluent(sasl, topic, prepared, events),
        "kafka": lambda topic: run_kafka_tool(tool_config, topic, events, payloads),
    }
    print(f"[bench] cluster: producer warm-up, a round unmeasured ({events:,} events a run)", flush=True)
    for rf in (1, REPLICATION_FACTOR):
        for send in tools.values():
            once(rf, send)
    measured: dict[tuple[str, int], list[Round]] = {}
    for i in range(rounds):
        for rf in (1, REPLICATION_FACTOR):
            for tool, send in tools.items():
                result = once(rf, send)
                measured.setdefault((tool, rf), []).append(result)
                print(f"[bench] cluster producer round {i + 1}: {result.tool:<32} RF {rf} "
                      f"{result.events_per_s:>12,.0f} events/s", flush=True)  # fmt: skip
    medians = {key: median_round(rs) for key, rs in measured.items()}
    return {
        "record_bytes": record_bytes,
        "rounds": rounds,
        "events": events,
        "tools": {
            tool: {
                "rf1": medians[(tool, 1)],
                "rf3": medians[(tool, REPLICATION_FACTOR)],
                # Each round's RF 3 run beside its own RF 1 run, seconds apart: the median of those ratios
                # holds when the machine's pace drifts between rounds (the rates alone vary more).
                "ratio": statistics.median(
                    rf3.events_per_s / rf1.events_per_s
                    for rf1, rf3 in zip(measured[(tool, 1)], measured[(tool, REPLICATION_FACTOR)], strict=True)
                ),
                "spread": {rf: [round(r.events_per_s) for r in measured[(tool, rf)]] for rf in (1, REPLICATION_FACTOR)},
            }
            for tool in tools
        },
    }


def create_topics(cluster: KafkaCluster, partitions: dict[str, int]) -> None:
    """The streaming runs' topics, as the pipeline's are on the cluster: RF 3, min.insync.replicas 2."""
    admin = AdminClient(cluster.client_config("ops"))
    isr = {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)}
    for name, count in partitions.items():
        new = NewTopic(name, num_partitions=count, replication_factor=REPLICATION_FACTOR, config=isr)
        admin.create_topics([new])[name].result(30)


def run(
    events: int = 2_000_000,
    max_offsets: int = 250_000,
    partitions: int = WORKERS,
    producer_events: int = 1_000_000,
    rounds: int = 5,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-bench-cluster-"))
    try:
        return measure(workdir, events, max_offsets, partitions, producer_events, rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the nodes' data, and the passwords


def measure(
    workdir: Path, events: int, max_offsets: int, partitions: int, producer_events: int, rounds: int
) -> dict[str, Any]:
    cluster = KafkaCluster.build(
        workdir / "kafka", [NodePorts(free_port(), free_port(), free_port()) for _ in range(NODES)]
    )
    cluster.prepare()
    redis_server = RedisServer(workdir / "redis", free_port(), persistent=False)
    redis_server.prepare()
    master = SparkMaster(workdir / "spark-master", free_port(), free_port(), SparkAuth(workdir / "spark-conf"))
    master.auth.prepare()
    master.prepare()
    workers = [SparkWorker(workdir / f"spark-worker-{i}", free_port(), free_port(), master, cores=1, memory="2g")
               for i in range(1, WORKERS + 1)]  # fmt: skip
    for worker in workers:
        worker.prepare()
    daemon_env = {**os.environ, **SPARK_DAEMON_ENV}
    kafka = [
        Program(f"kafka-{n.node_id}", n.command(), n.healthy, workdir / f"kafka-{n.node_id}.log") for n in cluster.nodes
    ]
    spark = [
        Program("spark-master", master.command(), master.healthy, workdir / "spark-master.log", daemon_env),
        *(Program(f"spark-worker-{i}", w.command(), w.healthy, workdir / f"spark-worker-{i}.log", daemon_env)
          for i, w in enumerate(workers, start=1)),
    ]  # fmt: skip
    print(f"[bench] cluster: starting {NODES} Kafka nodes, Redis, a Spark master and {WORKERS} workers", flush=True)
    with (
        running_together(kafka, timeout=120),
        running("redis", redis_server.command(), redis_server.healthy, workdir / "redis.log") as redis_proc,
        running_together(spark, timeout=120),
    ):
        cluster.ensure_principals(events=EVENTS_TOPIC, dead_letters=DEAD_LETTERS_TOPIC)
        create_topics(cluster, {EVENTS_TOPIC: partitions, DEAD_LETTERS_TOPIC: 1})
        print(f"[bench] cluster: loading {events:,} events (RF {REPLICATION_FACTOR}, {partitions} partitions)",
              flush=True)  # fmt: skip
        config = TrafficConfig(seed=16, start_ms=int(time.time() * 1000) - events // 1000 * 1000,
                               events_per_second=1000.0)  # fmt: skip
        truth = GroundTruth(config, events)
        loaded = BurstProducer(cluster.client_config("producer")).send(
            EVENTS_TOPIC, TrafficGenerator(config).records(events), truth=truth
        )
        assert loaded.delivered == events, loaded.to_dict()
        runs = {}
        for name, url, watched in (("local", "local[*]", None), ("cluster", master.url, master)):
            print(f"[bench] cluster: the streaming application drains them with master {url}", flush=True)
            runs[name] = drain(cluster, redis_server, redis_proc.pid, workdir, name, url, truth, max_offsets, watched)
        print(f"[bench] cluster: producer, RF 1 beside RF {REPLICATION_FACTOR}", flush=True)
        producer = producer_rates(cluster, workdir, producer_events, rounds)
    return report(runs, producer, events, max_offsets, partitions, WORKERS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="loaded once, drained by each streaming run")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=250_000, help="micro-batch size")
    parser.add_argument("--partitions", type=int, default=WORKERS, help="of the streaming runs' topic")
    parser.add_argument("--producer-events", type=int, default=1_000_000, help="per producer round")
    parser.add_argument("--rounds", type=int, default=5, help="producer rounds, after a warm-up round")
    args = parser.parse_args()
    exit_if_missed(run(args.events, args.max_offsets_per_trigger, args.partitions, args.producer_events, args.rounds))
