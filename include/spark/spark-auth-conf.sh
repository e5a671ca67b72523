#!/bin/sh
# The Spark cluster's shared secret (spark.authenticate) from $SPARK_AUTH_SECRET into
# $SPARK_CONF_DIR/spark-defaults.conf, readable by its owner only: spark-submit and Spark's daemons read
# it there, so the secret is never on a command line. docker-compose.yml runs this before every container
# that talks to the Spark cluster (devstack/spark_cluster.py writes the same file on the local stack).
set -eu
case "${SPARK_AUTH_SECRET:-}" in
  '' | *[!A-Za-z0-9._~-]*) echo "set SPARK_AUTH_SECRET in .env, URL-safe characters only" >&2; exit 1 ;;
esac
: "${SPARK_CONF_DIR:?SPARK_CONF_DIR must name the folder for spark-defaults.conf}"
mkdir -p "$SPARK_CONF_DIR"
umask 077
printf 'spark.authenticate true\nspark.authenticate.secret %s\n' "$SPARK_AUTH_SECRET" > "$SPARK_CONF_DIR/spark-defaults.conf"
