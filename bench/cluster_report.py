"""The cluster benchmark's tables (:mod:`bench.cluster`): streaming on the standalone cluster beside
``local[*]``, Redis's cost per million events and per batch, and the producer at RF 3 beside RF 1."""

from __future__ import annotations

import os
from typing import Any

from bench.producer import SETTINGS
from devstack.kafka_cluster import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR


def report(
    runs: dict[str, dict], producer: dict, events: int, max_offsets: int, partitions: int, workers: int
) -> dict[str, Any]:
    """Print what scale costs from :func:`bench.cluster.measure`'s figures; the figures, ratios and missed targets."""
    local, clustered = runs["local"], runs["cluster"]
    missed = []
    for name, figures in runs.items():
        if figures["counted_events"] != events or figures["counted_cells_wrong"]:
            wrong = figures["counted_cells_wrong"]
            missed.append(f"streaming {name}: counted {figures['counted_events']:,} of {events:,} events, "
                          f"{wrong} (page, window) cells differ from the ground truth")  # fmt: skip
    if clustered["executor_cores"] != workers:
        missed.append(f"streaming cluster: the master granted {clustered['executor_cores']} cores, not {workers}")
    stream_ratio = clustered["events_per_s"] / local["events_per_s"]
    cores = os.cpu_count()
    print()
    print(f"What scale costs, on this machine ({cores} cores), all figures from this run")
    print(f"Streaming: the same {events:,} events (topic RF {REPLICATION_FACTOR}, min ISR {MIN_INSYNC_REPLICAS}, "
          f"{partitions} partitions) drained with --available-now, micro-batches of <= {max_offsets:,}; "
          "events/s over batches 1..n")  # fmt: skip
    header = (f"{'master':<38} {'cores':>5} {'batches':>7} {'to batch 0 s':>12} {'events/s':>10} "
              f"{'/core':>8} {'counted':>11}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for label, figures in (("local[*] (one JVM)", local), (f"standalone, {workers} one-core workers", clustered)):
        ok = "exact" if figures["counted_events"] == events and not figures["counted_cells_wrong"] else "MISSED"
        print(f"{label:<38} {figures['executor_cores']:>5} {figures['batches']:>7} {figures['to_batch_0_s']:>12.1f} "
              f"{figures['events_per_s']:>10,.0f} {figures['events_per_s'] / figures['executor_cores']:>8,.0f} "
              f"{ok:>11}")  # fmt: skip
    print(f"{'cluster / local[*]':<38} {'':>5} {'':>7} {clustered['to_batch_0_s'] / local['to_batch_0_s']:>12.2f} "
          f"{stream_ratio:>10.2f}")  # fmt: skip
    print()
    print("Redis, over each whole run: INFO commandstats (the sink's scripts' own commands included) and the"
          " redis-server process's CPU (idle time and the benchmark's polls included)")  # fmt: skip
    header = (f"{'master':<38} {'commands/M ev':>13} {'CPU s/M ev':>10} {'commands/batch':>14} "
              f"{'cells/batch':>11} {'script ms/batch':>15} {'CPU ms/batch':>12}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for label, figures in (("local[*]", local), ("standalone", clustered)):
        cells = figures["redis_calls"].get("hincrby", 0) / figures["batches"]  # one HINCRBY per (page, window) cell
        print(f"{label:<38} {figures['redis_commands_per_m_events']:>13,.0f} "
              f"{figures['redis_cpu_s_per_m_events']:>10.3f} {figures['redis_commands_per_batch']:>14,.0f} "
              f"{cells:>11,.0f} {figures['redis_script_ms_per_batch']:>15.1f} "
              f"{figures['redis_cpu_ms_per_batch']:>12.1f}")  # fmt: skip
    busiest = sorted(clustered["redis_calls"].items(), key=lambda item: -item[1])[:8]
    print("commands (standalone run): " + ", ".join(f"{cmd} {n:,}" for cmd, n in busiest))
    print()
    settings = ", ".join(f"{k}={v}" for k, v in SETTINGS.items())
    print(f"Producer: {producer['events']:,} events ({producer['record_bytes']:.0f} bytes) per round into a fresh "
          f"3-partition topic, {settings}, as 'producer' over SASL/SCRAM-SHA-512, median of "
          f"{producer['rounds']} rounds")  # fmt: skip
    header = f"{'tool':<32} {'RF 1 events/s':>13} {'RF 3 events/s':>13} {'RF 3 / RF 1':>11} {'RF 3 p99 ms':>11}"
    print("(RF 3 / RF 1: the median of each round's ratio, RF 3 run beside RF 1 run)")
    print(header)
    print("-" * len(header))
    for figures in producer["tools"].values():
        rf1, rf3 = figures["rf1"], figures["rf3"]
        p99 = "-" if rf3.p99_ms is None else f"{rf3.p99_ms:.0f}"
        print(f"{rf1.tool:<32} {rf1.events_per_s:>13,.0f} {rf3.events_per_s:>13,.0f} {figures['ratio']:>11.2f} "
              f"{p99:>11}")  # fmt: skip
    print("rounds, events/s: " + "; ".join(
        f"{figures['rf1'].tool.split(',')[0]} RF {rf} {', '.join(f'{n:,}' for n in rates)}"
        for figures in producer["tools"].values() for rf, rates in figures["spread"].items()))  # fmt: skip
    return {
        "streaming": {"local": local, "cluster": clustered, "ratio": stream_ratio},
        "redis": {
            name: {key: figures[key] for key in figures if key.startswith("redis_")} for name, figures in runs.items()
        },
        "producer": producer,
        "ratios": {
            "cluster_to_local": stream_ratio,
            **{f"rf3_to_rf1_{tool}": figures["ratio"] for tool, figures in producer["tools"].items()},
        },
        "missed": missed,
    }
