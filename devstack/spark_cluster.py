"""A Spark standalone cluster on loopback: a master and workers, started with pyspark's own ``spark-class``.

The master keeps what it knows (workers, applications) in a recovery folder (Spark's FILESYSTEM recovery
mode), so a restarted master takes back the running applications and their executors instead of
forgetting them.

Every connection to the cluster is authenticated (``spark.authenticate``) with one shared secret, generated
at the first `make up`: without it, anyone who can reach the master's port could run code on the workers,
next to the Kafka and Redis logins the executors hold. The secret is kept in properties files readable by
their owner only (:class:`SparkAuth`), never on a command line: the daemons read theirs with
``--properties-file``, spark-submit reads ``$SPARK_CONF_DIR/spark-defaults.conf`` (``scripts/env.sh`` points
it there on the cluster), and a worker hands it to its executors in their environment, as Spark does.
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
from devstack.secret_files import generated_passwords, write_private


def spark_class(main_class: str, *args: str) -> list[str]:
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home or not (Path(spark_home) / "bin" / "spark-class").is_file():
        raise StackError("SPARK_HOME has no bin/spark-class: run `make setup` (it installs the full pyspark)")
    return [str(Path(spark_home) / "bin" / "spark-class"), main_class, *args]


def daemon(main_class: str, port: int, ui_port: int, properties_file: Path, *args: str) -> list[str]:
    """A standalone master's or worker's command: loopback only, its ports, its (0600) properties file."""
    return spark_class(
        main_class,
        *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)),
        *("--properties-file", str(properties_file)),
        *args,
    )


def master_state(ui_port: int) -> dict[str, Any] | None:
    """The master's own JSON view (status, workers, applications), or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class SparkAuth:
    """The cluster's shared secret, and the client configuration that carries it (``spark-defaults.conf``)."""

    conf_dir: Path

    @property
    def defaults_file(self) -> Path:
        return self.conf_dir / "spark-defaults.conf"

    def secret(self) -> str:
        return generated_passwords(self.conf_dir / "secret.json", ["spark"])["spark"]

    def properties(self) -> str:
        return f"spark.authenticate true\nspark.authenticate.secret {self.secret()}\n"

    def prepare(self) -> None:
        write_private(self.defaults_file, self.properties())


@dataclass
class SparkMaster:
    workdir: Path
    port: int
    ui_port: int
    auth: SparkAuth

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.workdir / "spark-master.conf"

    def prepare(self) -> None:
        (self.workdir / "recovery").mkdir(parents=True, exist_ok=True)
        write_private(
            self.properties_file,
            "spark.deploy.recoveryMode FILESYSTEM\n"
            f"spark.deploy.recoveryDirectory {self.workdir / 'recovery'}\n"
            "spark.ui.reverseProxy false\n" + self.auth.properties(),
        )

    def command(self) -> list[str]:
        return daemon("org.apache.spark.deploy.master.Master", self.port, self.ui_port, self.properties_file)

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

    @property
    def properties_file(self) -> Path:
        return self.workdir / "spark-worker.conf"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_private(self.properties_file, self.master.auth.properties())

    def command(self) -> list[str]:
        return daemon(
            "org.apache.spark.deploy.worker.Worker",
            self.port,
            self.ui_port,
            self.properties_file,
            *("--cores", str(self.cores), "--memory", self.memory, "--work-dir", str(self.workdir)),
            self.master.url,
        )

    def healthy(self) -> bool:
        return any(w.get("port") == self.port for w in self.master.alive_workers())
