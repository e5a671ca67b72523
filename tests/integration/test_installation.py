"""What `make setup` installs is consistent: one Spark, whichever way it is reached."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_spark_submit_and_import_pyspark_agree():
    import pyspark

    spark_home = Path(os.environ["SPARK_HOME"])
    assert Path(pyspark.__file__).parent == spark_home, "SPARK_HOME must be the pyspark package directory"
    result = subprocess.run(
        [str(spark_home / "bin" / "spark-submit"), "--version"], capture_output=True, text=True, check=True, timeout=120
    )
    match = re.search(r"version (\d+\.\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stderr
    assert match.group(1) == pyspark.__version__


def test_kafka_connector_jars_match_the_spark_version():
    import pyspark

    jars_dir = Path(os.environ["CLICKSTREAM_SPARK_JARS_DIR"])
    connector = sorted(p.name for p in jars_dir.glob("spark-sql-kafka-0-10_2.13-*.jar"))
    assert connector == [f"spark-sql-kafka-0-10_2.13-{pyspark.__version__}.jar"]
    # The connector folder adds only what pyspark lacks; a second Scala or Hadoop would shadow Spark's own.
    assert not list(jars_dir.glob("scala-library-*.jar"))
    assert not list(jars_dir.glob("hadoop-client-*.jar"))
