# The clickstream Airflow image: the official Airflow 3.3 image (Python 3.11) plus Java 17, the full
# pyspark with the Kafka connector jars and the event parser, and this package with its DAGs and Spark applications.
# Used by docker-compose.yml for every Airflow component and the Spark master and workers.
ARG AIRFLOW_VERSION=3.3.2

# The Airflow UI's Clickstream view (plugins/clickstream/www), built with the tools its lock file pins; only
# the built bundle reaches the image.
FROM node:22-bookworm-slim AS ui
WORKDIR /www
COPY plugins/clickstream/www/package.json plugins/clickstream/www/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY plugins/clickstream/www/ ./
RUN npm run build

FROM apache/airflow:${AIRFLOW_VERSION}-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
WORKDIR /opt/airflow/clickstream
# Dependencies first, pinned by the same lock file the local stack installs, so code edits reuse the layer.
COPY --chown=airflow:root requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/lock.txt \
 && pip install --no-cache-dir --force-reinstall --no-deps -r requirements/pyspark.txt

# The Spark Kafka connector jars, resolved by Maven from the same manifest, straight into Spark's jars/,
# so no job needs --jars (the Variable clickstream_spark_jars stays empty here); and the Prometheus JMX
# agent, which docker-compose hands to the Kafka broker.
COPY --chown=airflow:root include/jars/ include/jars/
RUN SPARK_JARS="$(python -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')" \
 && mvn -B -q -f include/jars/spark-kafka/pom.xml dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$SPARK_JARS" \
 && mvn -B -q dependency:copy -Dartifact=io.prometheus.jmx:jmx_prometheus_javaagent:1.0.1 \
        -DoutputDirectory=/home/airflow/jmx \
 && rm -rf /home/airflow/.m2
ENV SPARK_HOME=/home/airflow/.local/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=python \
    PYSPARK_DRIVER_PYTHON=python

# The JVM half of event parsing and micro-batch tallies, compiled against Spark's own jars into Spark's jars/ (as `make setup` does).
COPY --chown=airflow:root include/spark/java/ include/spark/java/
RUN javac --release 17 -nowarn -encoding UTF-8 -cp "$SPARK_HOME/jars/*" -d /tmp/parser \
        $(find include/spark/java -name '*.java') \
 && jar cf "$SPARK_HOME/jars/clickstream-spark-parser.jar" -C /tmp/parser . \
 && rm -rf /tmp/parser

COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root plugins/ plugins/
COPY --from=ui --chown=airflow:root /www/dist/ plugins/clickstream/www/dist/
RUN pip install --no-cache-dir --no-deps .
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root include/ /opt/airflow/include/
# The Spark master's recovery folder: a named volume mounted here starts owned by airflow's user, as this folder.
RUN mkdir -p /home/airflow/spark-recovery
WORKDIR /opt/airflow
