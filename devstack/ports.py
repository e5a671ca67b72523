"""Loopback ports: a free one for a fixture, whether one is taken, and the stack's own from the environment."""

from __future__ import annotations

import os
import random
import socket

from devstack.errors import StackError


def port_from_env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Fixture ports come from below Linux's ephemeral range (32768-60999 by default). A port the kernel handed
# out with bind(0) lies inside that range, so between picking it and a server binding it, any outgoing
# connection on the machine may take it as its local port, and the server then dies with EADDRINUSE.
_FIXTURE_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def _worker_slice() -> range:
    """This pytest-xdist worker's own share of the fixture range, so two workers never pick the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = len(_FIXTURE_PORTS) // max(count, 1)
    start = _FIXTURE_PORTS.start + (index % max(count, 1)) * size
    return range(start, start + size)


def free_port() -> int:
    """A loopback port below the ephemeral range that nobody holds right now (for fixtures).

    Never the same port twice in one process; random within this xdist worker's slice, so separate runs
    rarely meet either.
    """
    candidates = _worker_slice()
    for _ in range(200):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StackError(f"no free loopback port in {candidates.start}-{candidates.stop - 1} after 200 tries")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def check_ports_free(ports: dict[str, tuple[int, str]]) -> None:
    """Fail at once, naming the port and the variable that moves it, rather than hang on a taken port."""
    taken = [
        f"port {port} ({name}) is already in use: stop what holds it or set {env_var}"
        for name, (port, env_var) in ports.items()
        if port_in_use(port)
    ]
    if taken:
        raise StackError("; ".join(taken))


# The monitoring parts' ports, each with the variable that moves it (tests and benchmarks start stacks on
# free ports through these).
MONITORING_PORT_VARIABLES = {
    "prometheus": "CLICKSTREAM_PROMETHEUS_PORT",
    "alertmanager": "CLICKSTREAM_ALERTMANAGER_PORT",
    "statsd_exporter": "CLICKSTREAM_STATSD_EXPORTER_PORT",
    "statsd": "CLICKSTREAM_STATSD_PORT",
    "redis_exporter": "CLICKSTREAM_REDIS_EXPORTER_PORT",
    "kafka_metrics": "CLICKSTREAM_KAFKA_METRICS_PORT",
    "smtp": "CLICKSTREAM_SMTP_PORT",
    "spark_metrics": "CLICKSTREAM_SPARK_METRICS_PORT",
}
