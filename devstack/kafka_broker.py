"""A single-node KRaft Kafka broker (combined broker and controller) from the jars `make setup` resolved."""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from string import Template

from devstack.errors import StackError
from devstack.paths import HOME, KAFKA_LIBS


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, as ``kafka-storage random-uuid`` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaBroker:
    """A single-node KRaft broker (combined broker and controller) whose files live in ``workdir``."""

    workdir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    jvm_options: tuple[str, ...] = ()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def java(self, main_class: str, *args: str) -> list[str]:
        if not KAFKA_LIBS.is_dir():
            raise StackError(f"Kafka jars are missing in {KAFKA_LIBS}: run `make setup` first")
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            *self.jvm_options,
            f"-Dlog4j2.configurationFile={HOME / 'include/kafka/log4j2.yaml'}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main_class,
            *args,
        ]

    def prepare(self) -> None:
        """Write server.properties and format the storage once; a formatted log dir is kept as it is."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        template = Template((HOME / "include/kafka/server.properties").read_text())
        self.config_file.write_text(
            template.substitute(port=self.port, controller_port=self.controller_port, data_dir=str(self.data_dir))
        )
        if (self.data_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            replace(self, jvm_options=()).java(  # no JMX agent in a one-off tool: it would take the metrics port
                "kafka.tools.StorageTool",
                "format",
                "-t",
                kafka_cluster_id(),
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage in {self.data_dir} failed:\n{result.stderr[-2000:]}")

    def command(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.config_file))

    def healthy(self) -> bool:
        """The broker answers metadata requests (a listening socket alone is not enough)."""
        from confluent_kafka.admin import AdminClient

        try:
            # log_level 0: a broker that is still starting is expected here, not worth a log line.
            admin = AdminClient(
                {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
            )
            metadata = admin.list_topics(timeout=2)
            return len(metadata.brokers) > 0
        except Exception:
            return False
