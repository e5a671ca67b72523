"""Benchmarks: each prints its figures beside a reference tool measured in the same run (``python -m bench.run``)."""

import sys


def exit_if_missed(result: dict) -> None:
    """A benchmark run alone exits non-zero, naming them, when it missed any target."""
    if result["missed"]:
        sys.exit(f"targets missed: {'; '.join(result['missed'])}")
