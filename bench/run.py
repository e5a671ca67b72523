"""`make bench`: every benchmark, each printing its figures beside a reference tool measured in the same run.

``serving`` (:mod:`bench.serving`) is the feature-serving API's latency through the api-server, beside Redis's own.
``cluster`` (what the cluster topology costs: :mod:`bench.cluster`) joins the default set when
``CLICKSTREAM_TOPOLOGY=cluster``; named on the command line, it runs whatever the topology.
"""

from __future__ import annotations

import os
import sys

from bench import cluster, producer, serving, streaming

BENCHMARKS = {"producer": producer.run, "streaming": streaming.run, "serving": serving.run, "cluster": cluster.run}


def default_benchmarks() -> list[str]:
    """Every benchmark on the cluster topology; all but ``cluster`` on the single node's."""
    on_cluster = os.environ.get("CLICKSTREAM_TOPOLOGY") == "cluster"
    return [name for name in BENCHMARKS if on_cluster or name != "cluster"]


if __name__ == "__main__":
    chosen = sys.argv[1:] or default_benchmarks()
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    missed = []
    for name in chosen:
        print(f"== {name} ==", flush=True)
        missed += [f"{name}: {what}" for what in BENCHMARKS[name]()["missed"]]
    if missed:
        sys.exit("targets missed:\n  " + "\n  ".join(missed))  # every benchmark ran; the exit says which failed
