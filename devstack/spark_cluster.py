"""A Spark standalone cluster on loopback: a master and workers, started with pyspark's own ``spark-class``.

The master keeps what it knows (workers, applications) in a recovery folder (Spark's FILESYSTEM recovery
mode), so a restarted master takes back the running applications and their executors instead of
forgetting them.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.errors import StackError


def spark_class(main_class: str, *args: str) -> list[str]:
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home or not (Path(spark_home) / "bin" / "spark-class").is_file():
        raise StackError("SPARK_HOME has no bin/spark-class: run `make setup` (it installs the full pyspark)")
    return [str(Path(spark_home) / "bin" / "spark-class"), main_class, *args]


def master_state(ui_port: int) -> dict[str, Any] | None:
    """The master's own JSON view (status, workers, applications), or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class SparkMaster:
    workdir: Path
    port: int
    ui_port: int

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.workdir / "spark-master.conf"

    def prepare(self) -> None:
        (self.workdir / "recovery").mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(
            "spark.deploy.recoveryMode FILESYSTEM\n"
            f"spark.deploy.recoveryDirectory {self.workdir / 'recovery'}\n"
            "spark.ui.reverseProxy false\n"
        )

    def command(self) -> list[str]:
        return spark_class(
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.ui_port),
            "--properties-file",
            str(self.properties_file),
        )

    def state(self) -> dict[str, Any] | None:
        return master_state(self.ui_port)

    def healthy(self) -> bool:
        state = self.state()
        return bool(state) and state.get("status") == "ALIVE"

    def alive_workers(self) -> list[dict[str, Any]]:
        state = self.state() or {}
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


@dataclass
class SparkWorker:
    """One worker with ``cores`` cores and ``memory`` for its executors; healthy once the master lists it ALIVE."""

    workdir: Path
    port: int
    ui_port: int
    master: SparkMaster
    cores: int = 1
    memory: str = "2g"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return spark_class(
            "org.apache.spark.deploy.worker.Worker",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(self.ui_port),
            "--cores",
            str(self.cores),
            "--memory",
            self.memory,
            "--work-dir",
            str(self.workdir),
            self.master.url,
        )

    def healthy(self) -> bool:
        return any(w.get("port") == self.port for w in self.master.alive_workers())
