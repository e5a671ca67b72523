"""Defaults shared by the DAGs, the operators, the Spark applications and the local stack: one copy each.

Plain values, no Airflow or Spark imports, so a Spark driver can read them as readily as a DAG file.
"""

from __future__ import annotations

from types import MappingProxyType

# How late an event may arrive (by its own timestamp) and still count in its window.
WATERMARK = "2 minutes"
# How long Redis keeps a window's counts, and Kafka the events they were counted from.
RETENTION_DAYS = 7
RETENTION_MINUTES = RETENTION_DAYS * 24 * 60
TOPIC_RETENTION_MS = RETENTION_DAYS * 24 * 3600 * 1000
# Dead letters are kept twice as long: someone has to read them.
DEAD_LETTER_RETENTION_MS = 2 * TOPIC_RETENTION_MS

# Every spark-submit of the project: no UI (a port per job on a shared host) and a 1 GiB driver.
SPARK_CONF: MappingProxyType[str, str] = MappingProxyType({"spark.ui.enabled": "false"})
DRIVER_MEMORY = "1g"

# The Airflow Variables the Spark tasks read, as templates: the connector jars (comma-separated) and the
# port a streaming driver serves its metrics on (empty: none).
SPARK_JARS_VARIABLE = "clickstream_spark_jars"
SPARK_METRICS_PORT_VARIABLE = "clickstream_spark_metrics_port"
SPARK_JARS = f"{{{{ var.value.get('{SPARK_JARS_VARIABLE}', '') }}}}"
SPARK_METRICS_PORT = f"{{{{ var.value.get('{SPARK_METRICS_PORT_VARIABLE}', '') }}}}"

# The consumer-group prefixes the Spark jobs read Kafka under: each principal's ACLs allow its own only.
STREAMING_GROUP_PREFIX = "clickstream-streaming"
RECONCILER_GROUP_PREFIX = "clickstream-reconciler"
