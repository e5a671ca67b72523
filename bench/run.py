"""`make bench`: every benchmark, each printing its figures beside a reference tool measured in the same run."""

from __future__ import annotations

import sys

from bench import producer, streaming

BENCHMARKS = {"producer": producer.run, "streaming": streaming.run}

if __name__ == "__main__":
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    missed = []
    for name in chosen:
        print(f"== {name} ==", flush=True)
        missed += [f"{name}: {what}" for what in BENCHMARKS[name]()["missed"]]
    if missed:
        sys.exit("targets missed:\n  " + "\n  ".join(missed))  # every benchmark ran; the exit says which failed
