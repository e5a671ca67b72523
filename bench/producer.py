"""Producer throughput: clickstream's producer beside Kafka's own ProducerPerformance tool.

One broker (started here, on free loopback ports, secured as the stack's), one topic per run, the same
records and the same producer settings (acks=all, idempotence, lz4, linger 10 ms) for every tool. Every
tool logs in as the ``producer`` principal over SASL/SCRAM-SHA-512, and the broker's ACLs apply, as in the
pipeline. Kafka's tool sends payloads it loaded beforehand from a file of our generated events; the
like-for-like rows send the same kind of records, generated beforehand. The end-to-end row is
`clickstream-produce --rps 0`'s real path, generating the synthetic traffic while sending it, on the same
two cores as the broker. Kafka's tool and the like-for-like confluent-kafka row also run over a PLAINTEXT
listener of the same broker (no login, no ACL checks) in the same rounds: the cost of SASL/SCRAM.
Rounds are interleaved after a warm-up (the broker's JIT), and the median round is reported.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench import exit_if_missed
from clickstream.kafka_security import security_settings, spark_kafka_options
from clickstream.producing import BurstProducer
from clickstream.traffic import Record, TrafficConfig, TrafficGenerator
from devstack.kafka_broker import KafkaBroker
from devstack.paths import KAFKA_LIBS
from devstack.ports import free_port
from devstack.processes import running
from devstack.secret_files import write_private

REPO = Path(__file__).resolve().parent.parent

SETTINGS = {"acks": "all", "enable.idempotence": "true", "linger.ms": "10", "compression.type": "lz4"}
TARGET_EVENTS_PER_S = 200_000
TARGET_RATIO = 0.5
# The principal every tool sends as, over SASL/SCRAM (the pipeline's producer: WRITE on its topic only).
PRINCIPAL = "producer"
PLAINTEXT = ", PLAINTEXT"  # the rows measured over the plaintext listener say so


@dataclass
class Round:
    tool: str
    events: int
    events_per_s: float
    mb_per_s: float
    p50_ms: float | None
    p99_ms: float | None


def traffic(count: int) -> TrafficConfig:
    return TrafficConfig(seed=1, start_ms=int(time.time() * 1000) - count, events_per_second=1000.0)


def run_confluent(
    config: dict[str, Any], topic: str, records: list[Record] | None, count: int, suffix: str = ""
) -> Round:
    """Send ``records`` (generated beforehand), or with ``None`` generate ``count`` while sending.

    ``config`` is librdkafka's: where, and as whom (``suffix`` names the listener in the row's label).
    """
    producer = BurstProducer(dict(config))
    source = records if records is not None else TrafficGenerator(traffic(count)).records(count)
    stats = producer.send(topic, source)
    assert stats.delivered == count and stats.failed == 0, stats.to_dict()
    tool = ("confluent-kafka, like-for-like" if records is not None else "confluent-kafka, end to end") + suffix
    mb_per_s = stats.bytes_sent / stats.elapsed_s / 1e6
    return Round(tool, count, stats.rate, mb_per_s, stats.latency_ms(0.5), stats.latency_ms(0.99))


def run_kafka_python(config: dict[str, Any], topic: str, records: list[Record]) -> Round:
    """kafka-python, logging in as ``config`` (librdkafka settings) says: SASL/SCRAM, its own option names."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=config["bootstrap.servers"],
        security_protocol=config["security.protocol"],
        sasl_mechanism=config["sasl.mechanism"],
        sasl_plain_username=config["sasl.username"],
        sasl_plain_password=config["sasl.password"],
        acks="all",
        enable_idempotence=True,
        linger_ms=10,
        compression_type="lz4",
        batch_size=1_000_000,
    )
    failures: list[Exception] = []
    started = time.monotonic()
    nbytes = 0
    for record in records:
        producer.send(topic, value=record.value, key=record.key).add_errback(failures.append)
        nbytes += len(record.value)
    producer.flush(120)
    elapsed = time.monotonic() - started
    producer.close()
    assert not failures, failures[:3]
    count = len(records)
    return Round("kafka-python, like-for-like", count, count / elapsed, nbytes / elapsed / 1e6, None, None)


PERF_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\).*?(\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th"
)


def _property(value: str) -> str:
    """``value`` as a Java properties file reads it back (backslashes and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def write_tool_config(path: Path, config: dict[str, Any]) -> Path:
    """ProducerPerformance's ``--producer.config``: where and as whom (``config`` is librdkafka's) plus
    :data:`SETTINGS`. Written 0600 from its first byte, since it holds a password: never on a command line."""
    security = {
        key.removeprefix("kafka."): value for key, value in spark_kafka_options(security_settings(config)).items()
    }  # security.protocol, and for SASL sasl.mechanism and the JAAS line
    props = {"bootstrap.servers": config["bootstrap.servers"], **security, **SETTINGS, "batch.size": "1000000"}
    write_private(path, "".join(f"{key}={_property(str(value))}\n" for key, value in props.items()))
    return path


def write_payloads(path: Path, count: int = 20_000) -> float:
    """ProducerPerformance's ``--payload-file``: ``count`` generated events, one a line; their mean size in bytes."""
    sample = list(TrafficGenerator(traffic(count)).records(count))
    path.write_bytes(b"\n".join(r.value for r in sample))
    return sum(len(r.value) for r in sample) / len(sample)


def run_kafka_tool(tool_config: Path, topic: str, count: int, payload_file: Path, suffix: str = "") -> Round:
    """Kafka's ProducerPerformance with its settings, login included, from ``tool_config``."""
    cmd = [
        "java",
        "-Xmx1g",
        "-cp",
        f"{KAFKA_LIBS}/*",
        f"-Dlog4j2.configurationFile={REPO / 'include/kafka/log4j2.yaml'}",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(count),
        "--throughput",
        "-1",
        "--payload-file",
        str(payload_file),
        "--producer.config",
        str(tool_config),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    match = PERF_LINE.search(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return Round(
        "Kafka ProducerPerformance" + suffix,
        int(match.group(1)),
        float(match.group(2)),
        float(match.group(3)),
        float(match.group(4)),
        float(match.group(5)),
    )


def median_round(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.events_per_s)[len(rounds) // 2]


def sasl_cost(sasl: Round, plaintext: Round) -> dict[str, float]:
    return {
        "plaintext_events_per_s": plaintext.events_per_s,
        "sasl_events_per_s": sasl.events_per_s,
        "ratio": sasl.events_per_s / plaintext.events_per_s,
    }


def run(events: int = 1_000_000, python_events: int = 200_000, rounds: int = 3) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-bench-"))
    try:
        return measure(workdir, events, python_events, rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # it holds the broker's passwords


def measure(workdir: Path, events: int, python_events: int, rounds: int) -> dict[str, object]:
    broker = KafkaBroker(
        workdir / "kafka", free_port(), free_port(), free_port(), heap="1g", plaintext_port=free_port()
    )
    broker.prepare()
    payload_file = workdir / "payloads.txt"
    record_bytes = write_payloads(payload_file)
    with running("kafka", broker.command(), broker.healthy, workdir / "kafka.log", timeout=90):
        broker.ensure_principals()
        admin = AdminClient(broker.client_config("ops"))
        topics = iter(f"bench-{i}" for i in range(1000))

        def fresh_topic() -> str:
            """A new topic, created as ``ops``, that the ``producer`` principal may write (the pipeline's ACLs)."""
            name = next(topics)
            broker.grant(events=name)
            admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(30)
            return name

        sasl = broker.client_config(PRINCIPAL)
        plain = broker.plaintext_config()
        sasl_tool = write_tool_config(workdir / "producer-sasl.properties", sasl)
        plain_tool = write_tool_config(workdir / "producer-plaintext.properties", plain)
        prepared = list(TrafficGenerator(traffic(events)).records(events))
        prepared_python = prepared[:python_events]
        print(f"[bench] producer: warming up the broker ({events:,} events)", flush=True)
        run_confluent(sasl, fresh_topic(), prepared, events)
        run_kafka_tool(sasl_tool, fresh_topic(), events, payload_file)
        measured: dict[str, list[Round]] = {}
        for i in range(rounds):
            for name, fn in (
                ("kafka", lambda: run_kafka_tool(sasl_tool, fresh_topic(), events, payload_file)),
                ("kafka-plaintext", lambda: run_kafka_tool(plain_tool, fresh_topic(), events, payload_file, PLAINTEXT)),
                ("confluent", lambda: run_confluent(sasl, fresh_topic(), prepared, events)),
                ("confluent-plaintext", lambda: run_confluent(plain, fresh_topic(), prepared, events, PLAINTEXT)),
                ("confluent-e2e", lambda: run_confluent(sasl, fresh_topic(), None, events)),
                ("kafka-python", lambda: run_kafka_python(sasl, fresh_topic(), prepared_python)),
            ):
                result = fn()
                measured.setdefault(name, []).append(result)
                print(
                    f"[bench] producer round {i + 1}: {result.tool:<43} {result.events_per_s:>12,.0f} events/s",
                    flush=True,
                )
    reference = median_round(measured["kafka"])
    rows = {name: median_round(rs) for name, rs in measured.items() if name != "kafka"}
    client = (
        "confluent-kafka" if rows["confluent"].events_per_s >= rows["kafka-python"].events_per_s else "kafka-python"
    )
    like_for_like = rows["confluent" if client == "confluent-kafka" else "kafka-python"]
    print()
    print(
        f"Producer throughput, one process, acks=all, idempotent, lz4, {record_bytes:.0f}-byte events, "
        f"as {PRINCIPAL!r} over SASL/SCRAM-SHA-512 unless marked PLAINTEXT (median of {rounds} rounds, all in this run)"
    )
    header = f"{'tool':<43} {'events':>10} {'events/s':>12} {'MB/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs Kafka':>9}"
    print(header)
    print("-" * len(header))
    # The PLAINTEXT rows last: the cost of SASL has a table of its own below.
    for r in (reference, *sorted(rows.values(), key=lambda r: r.tool.endswith(PLAINTEXT))):
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.0f}"
        p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.0f}"
        print(
            f"{r.tool:<43} {r.events:>10,} {r.events_per_s:>12,.0f} {r.mb_per_s:>7.1f} {p50:>7} {p99:>7} "
            f"{r.events_per_s / reference.events_per_s:>9.2f}"
        )
    print(f"faster Python client, used by clickstream: {client}")
    missed = []
    for label, r in (("like-for-like", like_for_like), ("end to end", rows["confluent-e2e"])):
        ratio = r.events_per_s / reference.events_per_s
        verdict_rate = "met" if r.events_per_s >= TARGET_EVENTS_PER_S else "MISSED"
        verdict_ratio = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(
            f"{label:<14} >= {TARGET_EVENTS_PER_S:,} events/s: {verdict_rate} ({r.events_per_s:,.0f}); "
            f">= {TARGET_RATIO} of Kafka's tool: {verdict_ratio} ({ratio:.2f})"
        )
        missed += [f"{label} {what}" for what, v in (("rate", verdict_rate), ("ratio", verdict_ratio)) if v != "met"]
    # A figure, not a target: what logging in (and the ACL checks that come with a principal) costs.
    cost = {
        "kafka": {"tool": "Kafka ProducerPerformance", **sasl_cost(reference, rows["kafka-plaintext"])},
        "confluent": {
            "tool": "confluent-kafka, like-for-like",
            **sasl_cost(rows["confluent"], rows["confluent-plaintext"]),
        },
    }
    print()
    print("Cost of SASL/SCRAM-SHA-512 and ACLs (same broker, same rounds; PLAINTEXT clients are super users)")
    header = f"{'tool':<32} {'PLAINTEXT events/s':>18} {'SASL events/s':>14} {'SASL/PLAINTEXT':>15}"
    print(header)
    print("-" * len(header))
    for figures in cost.values():
        print(
            f"{figures['tool']:<32} {figures['plaintext_events_per_s']:>18,.0f} {figures['sasl_events_per_s']:>14,.0f}"
            f" {figures['ratio']:>15.2f}"
        )
    return {"reference": reference, "rows": rows, "sasl_cost": cost, "missed": missed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--python-events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    exit_if_missed(run(args.events, args.python_events, args.rounds))
