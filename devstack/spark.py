"""spark-submit commands with the Kafka connector jars `make setup` resolved and the project's Spark defaults."""

from __future__ import annotations

import os
from pathlib import Path

from clickstream.defaults import DRIVER_MEMORY, SPARK_CONF
from devstack.errors import StackError
from devstack.paths import SPARK_JARS_DIR


def connector_jars() -> list[str]:
    jars = sorted(str(p) for p in SPARK_JARS_DIR.glob("*.jar"))
    if not jars:
        raise StackError(f"no Spark Kafka connector jars in {SPARK_JARS_DIR}: run `make setup` first")
    return jars


def spark_submit_command(
    app: Path, *args: str, master: str = "local[2]", conf: dict[str, str] | None = None
) -> list[str]:
    """spark-submit of ``app`` with the connector jars, as the operators submit it."""
    spark_home = os.environ.get("SPARK_HOME")
    if not spark_home:
        raise StackError("SPARK_HOME is not set: source scripts/env.sh (make setup installs pyspark)")
    settings = {**SPARK_CONF, "spark.driver.memory": DRIVER_MEMORY, **(conf or {})}
    return [
        str(Path(spark_home) / "bin" / "spark-submit"),
        "--master",
        master,
        "--jars",
        ",".join(connector_jars()),
        *(item for key, value in settings.items() for item in ("--conf", f"{key}={value}")),
        str(app),
        *args,
    ]
