"""Streaming throughput and latency, beside the batch application on the same events, in one run.

1. Sustained rate: a backlog is loaded into Kafka, then the streaming application (trigger as fast as
   possible) works through it for at least ``--sustain-s`` seconds; the rate is the rows its counting
   query committed over that time, read from the progress it writes to Redis.
2. Latency: a fresh streaming job with a 1 s trigger, fed 1,000 events/s in real time; an event's
   latency is from the moment it is handed to the Kafka producer until Redis's window total includes
   it, polled every 20 ms. (Its event time is set when the burst is generated, a second or so before
   sending starts, so it would overstate every latency by that much.)
3. Reference: the batch application recounts the sustained test's topic; its events/s (Spark session
   start-up excluded) is the rate the streaming job is held against.

The broker is secured as the stack's: the jobs log in over SASL/SCRAM-SHA-512 as the pipeline's
principals (``streaming``, ``reconciler``; ``producer`` loads the events), each limited by its ACLs. With
``--compare-plaintext`` (the default) the sustained run is repeated right after it, over a PLAINTEXT
listener of the same broker (no login, no ACL checks), from the start of the same backlog with a fresh
checkpoint and fresh Redis keys: the cost of SASL/SCRAM, a figure rather than a target. (Run second, it
reads the events the first run has just read, which the page cache may still hold.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis
from confluent_kafka.admin import AdminClient, NewTopic

from bench import exit_if_missed
from clickstream import redis_layout
from clickstream.kafka_security import SECURITY_ENV, security_env
from clickstream.producing import BurstProducer
from clickstream.schema import window_label, window_start_ms
from clickstream.traffic import TrafficConfig, TrafficGenerator
from devstack.kafka_broker import KafkaBroker
from devstack.ports import free_port
from devstack.processes import running, stop_process, wait_until
from devstack.redis_server import RedisServer
from devstack.spark import spark_submit_command

REPO = Path(__file__).resolve().parent.parent

STREAMING_APP = REPO / "include/spark/clickstream_streaming.py"
BATCH_APP = REPO / "include/spark/clickstream_batch.py"
TARGETS = {"sustained_events_per_s": 100_000, "ratio_to_batch": 0.7, "p50_ms": 1000, "p95_ms": 2000,
           "batch_events_per_s": 300_000}  # fmt: skip


# Catching up on a backlog, a micro-batch of a million events keeps Spark's fixed cost per batch (offset
# and commit logs, planning: ~0.15 s) small beside its work.
MAX_OFFSETS_PER_TRIGGER = 1_000_000


def spark_job(
    app: Path,
    args: list[str],
    log: Path,
    redis_url: str,
    kafka_env: dict[str, str],
    master: str = "local[*]",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """The application as the operators submit it: Redis's URL and the Kafka login (``kafka_env``, from
    :func:`~clickstream.kafka_security.security_env`; empty: no login), credentials included, in its environment.
    ``master`` is Spark's (a standalone cluster's ``spark://`` URL: client mode, the driver here)."""
    env = {key: value for key, value in os.environ.items() if key != SECURITY_ENV}  # only the login given here
    with open(log, "wb") as out:
        return subprocess.Popen(spark_submit_command(app, *args, master=master), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**env, "REDIS_URL": redis_url, **kafka_env, **(extra_env or {})})  # fmt: skip


def sustained(
    broker,
    redis_server: RedisServer,
    workdir: Path,
    topic: str,
    dlq: str,
    events: int,
    sustain_s: float,
    plaintext: bool = False,
) -> dict:
    """The sustained rate as the ``streaming`` principal over SASL/SCRAM, or with ``plaintext`` over the
    broker's PLAINTEXT listener without a login; each from the start of ``topic``, into fresh Redis keys."""
    client = redis_server.client("admin")
    client.flushdb()
    if plaintext:  # no CLICKSTREAM_KAFKA_SECURITY: the job connects PLAINTEXT
        name, servers, kafka_env = "sustained-plaintext", broker.plaintext_config()["bootstrap.servers"], {}
    else:
        name, servers = "sustained", broker.bootstrap_servers
        kafka_env = security_env(broker.client_config("streaming"))
    args = ["--bootstrap-servers", servers, "--topic", topic, "--dead-letter-topic", dlq,
            "--checkpoint-dir", str(workdir / f"ckpt-{name}"),
            "--trigger", "0 seconds", "--max-offsets-per-trigger", str(MAX_OFFSETS_PER_TRIGGER)]  # fmt: skip
    job = spark_job(STREAMING_APP, args, workdir / f"{name}.log", redis_server.url("writer"), kafka_env)
    key = redis_layout.progress_key("clickstream_counts")
    batches: dict[int, tuple[float, int]] = {}  # batch id -> (time seen, input rows)
    try:
        deadline = time.monotonic() + sustain_s + 600
        while time.monotonic() < deadline and job.poll() is None:
            raw = client.hgetall(key)
            if b"batch_id" in raw:
                batch = int(raw[b"batch_id"])
                if batch not in batches:
                    batches[batch] = (time.monotonic(), int(raw[b"input_rows"]))
            total = sum(rows for _, rows in batches.values())
            measured = [b for b in batches if b >= 1]
            if measured and batches[max(measured)][0] - batches[min(measured)][0] >= sustain_s:
                break
            if total >= events:
                raise RuntimeError(f"the backlog of {events:,} events ran out before {sustain_s:.0f}s: load more")
            time.sleep(0.05)
    finally:
        stop_process(job, grace=60)
    # Batch 0 includes start-up; the window runs from the end of batch 1 to the end of the last one seen.
    ordered = sorted(b for b in batches if b >= 1)
    first, last = ordered[0], ordered[-1]
    seconds = batches[last][0] - batches[first][0]
    rows = sum(batches[b][1] for b in ordered[1:])
    return {"seconds": round(seconds, 1), "rows": rows, "events_per_s": rows / seconds, "batches": len(ordered) - 1}


def latency(broker, redis_server: RedisServer, workdir: Path, topic: str, dlq: str, seconds: float) -> dict:
    client = redis_server.client("admin")
    client.flushdb()
    args = ["--bootstrap-servers", broker.bootstrap_servers, "--topic", topic, "--dead-letter-topic", dlq,
            "--checkpoint-dir", str(workdir / "ckpt-latency"),
            "--trigger", "1 second", "--starting-offsets", "latest"]  # fmt: skip
    job = spark_job(
        STREAMING_APP,
        args,
        workdir / "latency.log",
        redis_server.url("writer"),
        security_env(broker.client_config("streaming")),
    )
    key = redis_layout.progress_key("clickstream_counts")
    try:
        deadline = time.monotonic() + 180
        while client.hget(key, "state") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # the first (empty) batches are behind us
        rate, count = 1000.0, int(seconds * 1000)
        producer = BurstProducer(broker.client_config("producer"))
        # Warm-up: the job's first events pay once for code generation and Kafka consumers (seconds);
        # the measure is the steady state, so 3 s of events go first, and are seen in Redis, untimed.
        warm = TrafficConfig(seed=98, start_ms=int(time.time() * 1000), events_per_second=rate, bot_share=0.0)
        warm_started = time.monotonic()
        producer.send(topic, TrafficGenerator(warm).records(3000), rate=rate)
        # Every warm-up event counted, whatever number of batches that took (under load, often one: no later
        # batch comes without new data).
        while _total_views(client) < 3000:
            if time.monotonic() - warm_started > 120:
                raise RuntimeError("the warm-up events never reached Redis")
            time.sleep(0.05)
        warm_up_s = time.monotonic() - warm_started
        config = TrafficConfig(seed=99, start_ms=int(time.time() * 1000), events_per_second=rate, bot_share=0.0)
        records = list(TrafficGenerator(config).records(count))
        # Rank of each event within its window: the window total that includes it (after the warm-up's).
        ranks, seen = [], {}
        for r in records:
            w = window_start_ms(r.ts)
            if w not in seen:
                seen[w] = int(client.hget(redis_layout.window_key(window_label(w)), "total") or 0)
            seen[w] += 1
            ranks.append((w, seen[w], r.ts))
        reached: dict[int, list[tuple[float, int]]] = {}
        done = threading.Event()

        def poll() -> None:
            poller = redis_server.client("admin")
            while not done.is_set():
                pipe = poller.pipeline(transaction=False)
                windows = sorted(seen)
                for w in windows:
                    pipe.hget(redis_layout.window_key(window_label(w)), "total")
                totals = pipe.execute()
                # Read after the answer: a total is never stamped earlier than Redis held it (so a latency can
                # only be overstated, by one round trip, never negative).
                now_ms = time.time() * 1000
                for w, total in zip(windows, totals, strict=True):
                    if total is not None:
                        reached.setdefault(w, []).append((now_ms, int(total)))
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        sent_ms: list[float] = []

        def timed(records):  # the moment each event is handed to the producer: where its latency starts
            for record in records:
                sent_ms.append(time.time() * 1000)
                yield record

        producer.send(topic, timed(records), rate=rate)
        final = dict(seen)  # each window's total once every event has landed

        def all_landed() -> bool:
            return all(reached.get(w) and reached[w][-1][1] >= n for w, n in final.items())

        wait_until(all_landed, 30, interval=0.1)  # what has not landed by then is a miss
        done.set()
        poller.join()
    finally:
        stop_process(job, grace=60)
    latencies = event_latencies(ranks, sent_ms, reached)
    seen_latencies = [x for x in latencies if x != math.inf]
    return {
        "events": len(ranks),
        "not_seen": len(latencies) - len(seen_latencies),
        # An event that never reached Redis is a miss: it counts in the percentiles as infinitely late.
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[int(len(latencies) * 0.95)],
        "mean_ms": statistics.fmean(seen_latencies) if seen_latencies else math.inf,
        "warm_up_s": warm_up_s,
    }


def event_latencies(
    ranks: list[tuple[int, int, int]], sent_ms: list[float], reached: dict[int, list[tuple[float, int]]]
) -> list[float]:
    """Each event's latency, sorted: from its send to the first poll whose window total includes it.

    ``math.inf`` for an event no poll saw. A negative latency means the measure itself is wrong (a total
    stamped before it was read), so it stops the benchmark rather than being rounded up.
    """
    latencies = []
    for (w, rank, _), sent in zip(ranks, sent_ms, strict=True):
        first = next((t for t, total in reached.get(w, []) if total >= rank), None)
        latency = math.inf if first is None else first - sent
        if latency < 0:
            raise RuntimeError(
                f"negative latency {latency:.1f} ms for event {rank} of window {w}: the measure is wrong"
            )
        latencies.append(latency)
    return sorted(latencies)


def _total_views(client: redis.Redis) -> int:
    labels = [label.decode() for label in client.zrange(redis_layout.WINDOWS_KEY, 0, -1)]
    return sum(int(client.hget(redis_layout.window_key(label), "total") or 0) for label in labels)


def batch(broker, redis_server: RedisServer, workdir: Path, topic: str) -> dict:
    report = workdir / "batch-report.json"
    args = ["--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
            "--report-file", str(report)]  # fmt: skip
    job = spark_job(
        BATCH_APP,
        args,
        workdir / "batch.log",
        redis_server.url("reconciler"),
        security_env(broker.client_config("reconciler")),
    )
    if job.wait(1800) != 0:
        raise RuntimeError(f"the batch application failed; see {workdir / 'batch.log'}")
    data = json.loads(report.read_text())
    return {"events": data["events_read"], "events_per_s": data["events_per_s"], "seconds": data["seconds"]}


def fence_cost(redis_server: RedisServer, rounds: int = 2000) -> dict:
    """What recording the Kafka offsets counted costs each micro-batch: the sink's script with and without the
    offsets fence, on the same Redis, for a batch as a 1 s trigger at 1,000 events/s gives (120 cells in 2
    windows, their users, 2 partitions, 2 dead-letter reasons), alternated in blocks so that both see the same
    machine. Redis's own time per script (``INFO commandstats``) and the round trip as the sink sees it, with
    its commit read (one HMGET, or HMGET and the offsets' HGETALL in one pipeline)."""
    from clickstream.traffic import DEFAULT_SITE_MAP

    client = redis_server.client("admin")
    writer = redis_server.client("writer")
    client.flushdb()
    now = window_start_ms(int(time.time() * 1000))
    windows = (now - 60_000, now)
    views = [(page, w, 1 + i % 17) for w in windows for i, page in enumerate(DEFAULT_SITE_MAP[:60])]
    client.pfadd("bench:users", *(f"u{n}" for n in range(400)))
    client.execute_command("PFDEBUG", "TODENSE", "bench:users")  # as the Spark tally sends them
    users = {w: client.get("bench:users") for w in windows}
    client.delete("bench:users")
    dead = {now: {"not_json": 3, "bad_page": 1}}
    fence_key = redis_layout.offsets_key("bench-topic-id")
    figures: dict[str, dict[str, list[float]]] = {"without": {"redis_us": [], "round_trip_us": []},
                                                  "with": {"redis_us": [], "round_trip_us": []}}  # fmt: skip
    batch_id, offset = 0, 0
    for block in range(10):
        for variant in ("without", "with") if block % 2 == 0 else ("with", "without"):
            key = redis_layout.commit_key(f"bench-{variant}")
            client.config_resetstat()
            started = time.perf_counter()
            for _ in range(rounds // 10):
                batch_id += 1
                offsets = None
                if variant == "with":
                    offsets = redis_layout.BatchOffsets(fence_key, "events", {0: (offset, offset + 500),
                                                                              1: (offset, offset + 500)})  # fmt: skip
                    offset += 500
                commit = redis_layout.read_commit(writer, key, fence_key if variant == "with" else None)
                redis_layout.apply_batch(writer, key, batch_id, commit.watermark_ms, views, users,
                                         after=commit.batch_id, dead_letters=dead, offsets=offsets)  # fmt: skip
            elapsed = time.perf_counter() - started
            stats = client.info("commandstats")["cmdstat_eval"]
            figures[variant]["redis_us"].append(stats["usec_per_call"])
            figures[variant]["round_trip_us"].append(elapsed / (rounds // 10) * 1e6)
    out = {variant: {name: statistics.median(values) for name, values in f.items()} for variant, f in figures.items()}
    out["cells"], out["rounds"] = len(views), rounds
    return out


def print_fence_cost(cost: dict) -> None:
    print()
    print(f"Cost of the offsets fence per micro-batch ({cost['cells']} cells, 2 windows of users, 2 partitions; "
          f"{cost['rounds']:,} batches, medians of 5 blocks each)")  # fmt: skip
    print(f"{'':<60} {'without':>12} {'with':>12} {'ratio':>8}")
    for name, label in (("redis_us", "Redis time per script, us"), ("round_trip_us", "commit read + script, us")):
        without, with_fence = cost["without"][name], cost["with"][name]
        print(f"{label:<60} {without:>12,.0f} {with_fence:>12,.0f} {with_fence / without:>8.2f}")


def run(
    events: int = 120_000_000, sustain_s: float = 180.0, latency_s: float = 60.0, compare_plaintext: bool = True
) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-bench-streaming-"))
    try:
        return measure(workdir, events, sustain_s, latency_s, compare_plaintext)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # it holds the broker's passwords


def measure(workdir: Path, events: int, sustain_s: float, latency_s: float, compare_plaintext: bool) -> dict:
    broker = KafkaBroker(
        workdir / "kafka", free_port(), free_port(), free_port(), heap="1g", plaintext_port=free_port()
    )
    broker.prepare()
    redis_server = RedisServer(workdir / "redis", free_port(), persistent=False)
    redis_server.prepare()
    with (
        running("kafka", broker.command(), broker.healthy, workdir / "kafka.log", timeout=90),
        running("redis", redis_server.command(), redis_server.healthy, workdir / "redis.log"),
    ):
        broker.ensure_principals()
        # Each events topic with the pipeline's ACLs: producer writes it, streaming reads it and writes the
        # dead letters, reconciler reads both.
        for topic in ("backlog", "live"):
            broker.grant(events=topic, dead_letters="dlq")
        admin = AdminClient(broker.client_config("ops"))
        for name, partitions in (("backlog", 2), ("live", 2), ("dlq", 1)):
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        print(f"[bench] streaming: loading a backlog of {events:,} events", flush=True)
        config = TrafficConfig(seed=5, start_ms=int(time.time() * 1000) - events // 1000 * 1000,
                               events_per_second=1000.0)  # fmt: skip
        loaded = BurstProducer(broker.client_config("producer")).send(
            "backlog", TrafficGenerator(config).records(events)
        )
        assert loaded.delivered == events, loaded.to_dict()
        print(f"[bench] streaming: sustained run ({sustain_s:.0f}s at least)", flush=True)
        sus = sustained(broker, redis_server, workdir, "backlog", "dlq", events, sustain_s)
        plain = None
        if compare_plaintext:
            print(f"[bench] streaming: sustained run again over PLAINTEXT ({sustain_s:.0f}s at least)", flush=True)
            plain = sustained(broker, redis_server, workdir, "backlog", "dlq", events, sustain_s, plaintext=True)
        print(f"[bench] streaming: latency at 1,000 events/s for {latency_s:.0f}s", flush=True)
        lat = latency(broker, redis_server, workdir, "live", "dlq", latency_s)
        print("[bench] streaming: batch application over the same backlog", flush=True)
        bat = batch(broker, redis_server, workdir, "backlog")
        print("[bench] streaming: the offsets fence's cost per micro-batch", flush=True)
        fence = fence_cost(redis_server)
    ratio = sus["events_per_s"] / bat["events_per_s"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print()
    print("Streaming Kafka -> Spark -> Redis, local[*] on this machine, all figures from this run")
    print(f"{'measure':<60} {'value':>12} {'target':>12} verdict")
    batch_cap = f"{MAX_OFFSETS_PER_TRIGGER:,}"
    rows = [
        (f"sustained events/s ({sus['seconds']:.0f} s, {sus['batches']} batches of <= {batch_cap})",
         f"{sus['events_per_s']:,.0f}", ">= 100,000",
         verdict(sus["events_per_s"] >= TARGETS["sustained_events_per_s"])),
        (f"batch application events/s ({bat['events']:,} events)", f"{bat['events_per_s']:,.0f}", ">= 300,000",
         verdict(bat["events_per_s"] >= TARGETS["batch_events_per_s"])),
        ("streaming / batch", f"{ratio:.2f}", ">= 0.70", verdict(ratio >= TARGETS["ratio_to_batch"])),
        (f"event -> Redis latency p50 (1 s trigger, {lat['events']:,} events)", f"{lat['p50_ms']:,.0f} ms",
         "<= 1,000 ms", verdict(lat["p50_ms"] <= TARGETS["p50_ms"])),
        ("event -> Redis latency p95", f"{lat['p95_ms']:,.0f} ms", "<= 2,000 ms",
         verdict(lat["p95_ms"] <= TARGETS["p95_ms"])),
    ]  # fmt: skip
    for label, value, target, ok in rows:
        print(f"{label:<60} {value:>12} {target:>12} {ok}")
    print(
        f"(latency is the steady state: the job's first 3,000 events, sent before it, took"
        f" {lat['warm_up_s']:.1f} s to reach Redis, code generation and Kafka consumers included)"
    )
    if lat["not_seen"]:
        print(f"{lat['not_seen']} events never showed up in Redis during the latency run: each counts as a miss")
    missed = [label for label, _, _, ok in rows if ok != "met"]
    cost = None
    if plain is not None:
        # A figure, not a target: what the jobs' login (and the ACL checks that come with it) costs.
        cost = {
            "plaintext_events_per_s": plain["events_per_s"],
            "sasl_events_per_s": sus["events_per_s"],
            "ratio": sus["events_per_s"] / plain["events_per_s"],
            "plaintext": plain,
        }
        print()
        print("Cost of SASL/SCRAM-SHA-512 and ACLs: the sustained run over each listener of the same broker")
        print(f"{'listener (same backlog, fresh checkpoint and Redis keys)':<60} {'events/s':>12}")
        for label, figures in (("PLAINTEXT, no login", plain), ("SASL/SCRAM-SHA-512 as streaming", sus)):
            label = f"{label} ({figures['seconds']:.0f} s, {figures['batches']} batches)"
            print(f"{label:<60} {figures['events_per_s']:>12,.0f}")
        print(f"{'SASL / PLAINTEXT':<60} {cost['ratio']:>12.2f}")
    print_fence_cost(fence)
    return {"sustained": sus, "latency": lat, "batch": bat, "ratio": ratio, "sasl_cost": cost, "missed": missed,
            "offsets_fence": fence}  # fmt: skip


def fence_only() -> dict:
    """Only the offsets fence's cost (seconds, no Kafka or Spark): ``--fence-only``."""
    workdir = Path(tempfile.mkdtemp(prefix="clickstream-bench-fence-"))
    try:
        redis_server = RedisServer(workdir / "redis", free_port(), persistent=False)
        redis_server.prepare()
        with running("redis", redis_server.command(), redis_server.healthy, workdir / "redis.log"):
            cost = fence_cost(redis_server)
        print_fence_cost(cost)
        return {"offsets_fence": cost, "missed": []}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000_000, help="backlog for the sustained run")
    parser.add_argument("--sustain-s", type=float, default=180.0)
    parser.add_argument("--latency-s", type=float, default=60.0)
    parser.add_argument(
        "--compare-plaintext",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="repeat the sustained run over a PLAINTEXT listener: what SASL/SCRAM costs",
    )
    parser.add_argument("--fence-only", action="store_true", help="only the offsets fence's cost per micro-batch")
    args = parser.parse_args()
    exit_if_missed(fence_only() if args.fence_only else run(args.events, args.sustain_s, args.latency_s,
                                                              args.compare_plaintext))  # fmt: skip
