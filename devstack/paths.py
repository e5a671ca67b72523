"""Where the checkout, its runtime state, its installed dependencies and its venv live.

Each honours the variable ``scripts/env.sh`` exports, so the shell, the tests and the stack agree.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = Path(os.environ.get("CLICKSTREAM_HOME", Path(__file__).resolve().parent.parent))
STATE = Path(os.environ.get("CLICKSTREAM_STATE", HOME / ".state"))
DEPS = Path(os.environ.get("CLICKSTREAM_DEPS", HOME / ".deps"))
KAFKA_LIBS = Path(os.environ.get("CLICKSTREAM_KAFKA_LIBS", DEPS / "kafka-broker"))
SPARK_CONF = STATE / "spark-conf"  # the cluster's client configuration: its authentication secret
SPARK_JARS_DIR = Path(os.environ.get("CLICKSTREAM_SPARK_JARS_DIR", DEPS / "spark-kafka"))
VENV_BIN = Path(os.environ.get("CLICKSTREAM_VENV", HOME / ".venv")) / "bin"
MONITORING = HOME / "include" / "monitoring"
SPARK_APPS = HOME / "include" / "spark"
LOGS = STATE / "logs"
