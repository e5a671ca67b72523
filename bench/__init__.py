"""Benchmarks: each prints its figures beside a reference tool measured in the same run (``python -m bench.run``)."""
