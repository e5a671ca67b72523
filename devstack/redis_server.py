"""Debian's redis-server on loopback: persistent for the stack, ephemeral for fixtures."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from devstack.errors import StackError


@dataclass
class RedisServer:
    """A redis-server bound to loopback, persisting into ``workdir`` when ``persistent``."""

    workdir: Path
    port: int
    persistent: bool = True

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
        cmd = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        if self.persistent:
            cmd += ["--appendonly", "yes", "--save", "60 1"]
        else:
            cmd += ["--appendonly", "no", "--save", ""]
        return cmd

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())
        except Exception:
            return False
