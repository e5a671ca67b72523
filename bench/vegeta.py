"""vegeta, the HTTP load generator (`scripts/setup.sh --bench-tools` builds it with ``go install``, pinned):
its targets file, an attack at a fixed rate, and the figures of its JSON report."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

from devstack.paths import DEPS
from devstack.secret_files import write_private

VEGETA = DEPS / "bin" / "vegeta"
ERROR_SAMPLES = 3


def require() -> None:
    if not VEGETA.exists():
        raise RuntimeError(f"no {VEGETA}: `scripts/setup.sh --bench-tools` builds it (`make bench` runs that)")


def write_targets(path: Path, base_url: str, paths: list[str], token: str) -> Path:
    """One ``GET`` target per path (vegeta rotates over them), each with the bearer token; 0600, since it
    holds the token."""
    write_private(path, "".join(f"GET {base_url}{p}\nAuthorization: Bearer {token}\n\n" for p in paths))
    return path


def _vegeta(*args: str) -> str:
    return subprocess.run([str(VEGETA), *args], capture_output=True, text=True, timeout=120, check=True).stdout


def attack(targets: Path, rate: int, duration_s: float, results: Path) -> dict[str, Any]:
    """``vegeta attack`` at ``rate`` requests/s for ``duration_s``; its figures (:func:`figures`)."""
    cmd = [str(VEGETA), "attack", f"-targets={targets}", f"-rate={rate}/s", f"-duration={duration_s}s",
           "-timeout=10s", f"-output={results}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"vegeta attack failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(_vegeta("report", "-type=json", str(results)))
    return figures(rate, report, _vegeta("encode", "-to=json", str(results)).splitlines())


def figures(rate: int, report: dict[str, Any], hits: list[str]) -> dict[str, Any]:
    """From ``vegeta report -type=json`` (latencies in ns) and ``vegeta encode -to=json``'s lines: the
    percentiles in ms, the status codes, the errors (every answer but a 2xx; code 0 is no answer at all,
    which vegeta's own error messages name) and up to three distinct error answers, with their bodies."""
    samples: list[str] = []
    for line in hits:
        hit = json.loads(line)
        if hit["code"] == 0 or 200 <= hit["code"] < 300:
            continue
        body = base64.b64decode(hit.get("body") or b"").decode(errors="replace")[:200]
        sample = f"HTTP {hit['code']}: {body}"
        if sample not in samples:
            samples.append(sample)
        if len(samples) == ERROR_SAMPLES:
            break
    codes = {int(code): n for code, n in report.get("status_codes", {}).items()}
    latencies = report["latencies"]
    return {
        "rate": rate,
        "requests": report["requests"],
        "throughput": report["throughput"],
        "p50_ms": latencies["50th"] / 1e6,
        "p99_ms": latencies["99th"] / 1e6,
        "max_ms": latencies["max"] / 1e6,
        "status_codes": codes,
        "errors": sum(n for code, n in codes.items() if not 200 <= code < 300),
        "error_messages": report.get("errors") or [],
        "error_samples": samples,
    }
