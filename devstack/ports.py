"""Loopback ports: a free one for a fixture, whether one is taken, and the stack's own from the environment."""

from __future__ import annotations

import os
import socket

from devstack.errors import StackError


def port_from_env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def free_port() -> int:
    """A loopback port nobody listens on right now (for fixtures)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
