# shellcheck shell=bash
# The environment every Make target, script and test runs in. Source it; it prints nothing.
# Ports and locations are overridable from the caller's environment.

_home="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A shell that sourced another clone's env.sh carries that clone's paths: here they give way to this clone's.
if [ -n "${CLICKSTREAM_HOME:-}" ] && [ "$CLICKSTREAM_HOME" != "$_home" ]; then
  unset CLICKSTREAM_VENV CLICKSTREAM_DEPS CLICKSTREAM_STATE AIRFLOW_HOME AIRFLOW_CONFIG AIRFLOW_VAR_CLICKSTREAM_SPARK_JARS
fi
export CLICKSTREAM_HOME="$_home"
unset _home
export CLICKSTREAM_VENV="${CLICKSTREAM_VENV:-$CLICKSTREAM_HOME/.venv}"
export CLICKSTREAM_DEPS="${CLICKSTREAM_DEPS:-$CLICKSTREAM_HOME/.deps}"
export CLICKSTREAM_STATE="${CLICKSTREAM_STATE:-$CLICKSTREAM_HOME/.state}"
export CLICKSTREAM_PYTHON="${CLICKSTREAM_PYTHON:-python3.11}"

# Local stack ports: each service's usual one.
export CLICKSTREAM_KAFKA_PORT="${CLICKSTREAM_KAFKA_PORT:-9092}"
export CLICKSTREAM_KAFKA_CONTROLLER_PORT="${CLICKSTREAM_KAFKA_CONTROLLER_PORT:-9097}"
export CLICKSTREAM_KAFKA_INTERNAL_PORT="${CLICKSTREAM_KAFKA_INTERNAL_PORT:-9094}"
export CLICKSTREAM_REDIS_PORT="${CLICKSTREAM_REDIS_PORT:-6379}"
export CLICKSTREAM_AIRFLOW_PORT="${CLICKSTREAM_AIRFLOW_PORT:-8080}"
# Monitoring (each tool's usual port): Prometheus, Alertmanager, statsd_exporter (web; StatsD itself on UDP
# 9125), redis_exporter, the broker's JMX metrics, the mail catcher's SMTP port, a streaming driver's UI.
export CLICKSTREAM_PROMETHEUS_PORT="${CLICKSTREAM_PROMETHEUS_PORT:-9090}"
export CLICKSTREAM_ALERTMANAGER_PORT="${CLICKSTREAM_ALERTMANAGER_PORT:-9093}"
export CLICKSTREAM_STATSD_EXPORTER_PORT="${CLICKSTREAM_STATSD_EXPORTER_PORT:-9102}"
export CLICKSTREAM_STATSD_PORT="${CLICKSTREAM_STATSD_PORT:-9125}"
export CLICKSTREAM_REDIS_EXPORTER_PORT="${CLICKSTREAM_REDIS_EXPORTER_PORT:-9121}"
export CLICKSTREAM_KAFKA_METRICS_PORT="${CLICKSTREAM_KAFKA_METRICS_PORT:-9308}"
export CLICKSTREAM_SMTP_PORT="${CLICKSTREAM_SMTP_PORT:-1025}"
export CLICKSTREAM_SPARK_METRICS_PORT="${CLICKSTREAM_SPARK_METRICS_PORT:-4040}"
# The topology: "single" (one KRaft node, Spark local[*] inside each job) or "cluster" (three KRaft nodes and a
# Spark standalone master with two workers: devstack/stack.py). A cluster node's ports are
# CLICKSTREAM_KAFKA_NODE<i>_{PORT,CONTROLLER_PORT,INTERNAL_PORT,METRICS_PORT} (by default the single node's
# plus 100 per node; metrics plus 1), the workers' CLICKSTREAM_SPARK_WORKER<i>_{PORT,UI_PORT}.
export CLICKSTREAM_TOPOLOGY="${CLICKSTREAM_TOPOLOGY:-single}"
export CLICKSTREAM_SPARK_MASTER_PORT="${CLICKSTREAM_SPARK_MASTER_PORT:-7077}"
export CLICKSTREAM_SPARK_MASTER_UI_PORT="${CLICKSTREAM_SPARK_MASTER_UI_PORT:-8081}"
# Airflow's metadata DB: the embedded SQLite by default, or a local PostgreSQL under supervisord.
export CLICKSTREAM_AIRFLOW_DB="${CLICKSTREAM_AIRFLOW_DB:-sqlite}"
export CLICKSTREAM_POSTGRES_PORT="${CLICKSTREAM_POSTGRES_PORT:-5432}"
if [ "$CLICKSTREAM_AIRFLOW_DB" = postgres ]; then
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-postgresql+psycopg2://airflow@127.0.0.1:$CLICKSTREAM_POSTGRES_PORT/airflow}"
fi

# Jars resolved by Maven from include/jars/*/pom.xml.
export CLICKSTREAM_KAFKA_LIBS="$CLICKSTREAM_DEPS/kafka-broker"
export CLICKSTREAM_SPARK_JARS_DIR="$CLICKSTREAM_DEPS/spark-kafka"

# The full pyspark in the venv is Spark itself.
_site="$(ls -d "$CLICKSTREAM_VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1 || true)"
if [ -n "$_site" ]; then
  export SPARK_HOME="$_site/pyspark"
fi
unset _site
export PYSPARK_PYTHON="$CLICKSTREAM_VENV/bin/python"
export PYSPARK_DRIVER_PYTHON="$CLICKSTREAM_VENV/bin/python"
export PATH="$CLICKSTREAM_VENV/bin:$PATH"
# The browser test drives Debian's Chromium (`make setup` installs it): Playwright never fetches a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export CLICKSTREAM_CHROMIUM="${CLICKSTREAM_CHROMIUM:-/usr/bin/chromium}"

# Airflow: committed overrides in airflow_home/, runtime files in the state folder.
export AIRFLOW_HOME="${AIRFLOW_HOME:-$CLICKSTREAM_STATE/airflow}"
export AIRFLOW_CONFIG="${AIRFLOW_CONFIG:-$CLICKSTREAM_HOME/airflow_home/airflow.cfg}"

# Connections of the local stack, as Airflow reads them from the environment. Kafka's and Redis's (one per
# principal, with generated passwords) are set by `make up` for the processes it starts:
# devstack/kafka_broker.py and devstack/redis_server.py.
export AIRFLOW_CONN_SMTP_DEFAULT="${AIRFLOW_CONN_SMTP_DEFAULT:-{\"conn_type\": \"smtp\", \"host\": \"127.0.0.1\", \"port\": $CLICKSTREAM_SMTP_PORT, \"extra\": {\"disable_tls\": true, \"disable_ssl\": true, \"from_email\": \"airflow@clickstream.local\"\}\}}"
# spark_default: Spark inside each job on one node; the standalone master, in client deploy mode, on the cluster.
if [ "$CLICKSTREAM_TOPOLOGY" = cluster ]; then
  # spark-submit reads the cluster's authentication secret from spark-defaults.conf there (devstack/spark_cluster.py).
  export SPARK_CONF_DIR="${SPARK_CONF_DIR:-$CLICKSTREAM_STATE/spark-conf}"
  _spark_default="{\"conn_type\": \"spark\", \"host\": \"spark://127.0.0.1\", \"port\": $CLICKSTREAM_SPARK_MASTER_PORT, \"extra\": {\"deploy-mode\": \"client\"}}"
else
  _spark_default='{"conn_type": "spark", "host": "local[*]", "extra": {"deploy-mode": "client"}}'
fi
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$_spark_default}"
unset _spark_default

# Airflow Variable read by the Spark tasks: the Kafka connector jars, comma-separated.
if [ -z "${AIRFLOW_VAR_CLICKSTREAM_SPARK_JARS:-}" ] && [ -d "$CLICKSTREAM_SPARK_JARS_DIR" ]; then
  AIRFLOW_VAR_CLICKSTREAM_SPARK_JARS="$(find "$CLICKSTREAM_SPARK_JARS_DIR" -maxdepth 1 -name '*.jar' | sort | paste -sd, -)"
  export AIRFLOW_VAR_CLICKSTREAM_SPARK_JARS
fi
