#!/usr/bin/env bash
# Installs everything the project needs into git-ignored folders. Idempotent: each step is
# skipped when a stamp holding the hash of its inputs says it is already done.
set -euo pipefail
with_test_tools=0 with_bench_tools=0
for option in "$@"; do  # each option named is honoured (a second one used to be ignored without a word)
  case "$option" in
    --test-tools) with_test_tools=1 ;;  # also what only the tests need (Docker Compose, to check the compose file)
    --bench-tools) with_bench_tools=1 ;;  # also what only the benchmarks need (vegeta, the HTTP load generator)
    *) echo "usage: scripts/setup.sh [--test-tools] [--bench-tools]" >&2; exit 2 ;;
  esac
done
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLICKSTREAM_HOME"

log() { printf '[setup] %s\n' "$*"; }
stamp_dir="$CLICKSTREAM_DEPS/stamps"
mkdir -p "$stamp_dir"

# done_before NAME FILE... : true when the stamp NAME matches the hash of FILE...
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
done_before() { local name=$1; shift; [ -f "$stamp_dir/$name" ] && [ "$(cat "$stamp_dir/$name")" = "$(inputs_hash "$@")" ]; }
mark_done() { local name=$1; shift; inputs_hash "$@" > "$stamp_dir/$name"; }

# 1. System packages (Debian): Java for Kafka and Spark, Maven for the jars, Redis, PostgreSQL.
need_apt=()
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)  # javac builds the Spark event parser and batch tally
command -v mvn >/dev/null || need_apt+=(maven)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# PostgreSQL, for CLICKSTREAM_AIRFLOW_DB=postgres (runuser, from util-linux, runs it as its own user).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# Monitoring: Prometheus (with promtool), Alertmanager, redis_exporter.
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v prometheus-redis-exporter >/dev/null || need_apt+=(prometheus-redis-exporter)
# Node.js and npm build the UI bundle; Chromium (and its driver) runs the browser test of the UI.
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "[setup] missing ${need_apt[*]} and no apt-get: install them yourself" >&2; exit 1; }
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  # The packages' own services must not start: supervisord runs them, on the stack's ports.
  no_services=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    no_services=1
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
    $sudo_cmd chmod 755 /usr/sbin/policy-rc.d
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ -n "$no_services" ]; then $sudo_cmd rm -f /usr/sbin/policy-rc.d; fi
fi

# 2. Python: a venv with the pinned closure, then the full pyspark over pyspark-client.
py_inputs=(requirements/lock.txt requirements/pyspark.txt pyproject.toml)
if [ ! -x "$CLICKSTREAM_VENV/bin/python" ]; then
  log "creating the venv with $CLICKSTREAM_PYTHON"
  "$CLICKSTREAM_PYTHON" -m venv "$CLICKSTREAM_VENV"
fi
if ! done_before python "${py_inputs[@]}"; then
  [ -x "$CLICKSTREAM_VENV/bin/uv" ] || "$CLICKSTREAM_VENV/bin/pip" install -q uv==0.13.9
  uv() { "$CLICKSTREAM_VENV/bin/uv" "$@"; }
  log "installing Python dependencies (requirements/lock.txt)"
  uv pip install -q --python "$CLICKSTREAM_VENV/bin/python" -r requirements/lock.txt
  log "installing the full pyspark over pyspark-client (requirements/pyspark.txt)"
  # --no-cache: the index marks the sdist as always stale, so uv rebuilds it on every install and
  # would keep each rebuilt copy (0.5-1.9 GB) in its cache for good, filling the disk over time.
  uv pip install -q --python "$CLICKSTREAM_VENV/bin/python" --no-cache --reinstall-package pyspark -r requirements/pyspark.txt
  log "installing this package (editable)"
  uv pip install -q --python "$CLICKSTREAM_VENV/bin/python" --no-deps -e .
  mark_done python "${py_inputs[@]}"
fi
source scripts/env.sh  # SPARK_HOME exists now

# 3. Jars from Maven Central, resolved from the manifests under include/jars/.
copy_jars() {  # copy_jars MANIFEST_DIR OUTPUT_DIR
  local manifest=$1 out=$2
  if ! done_before "jars-$(basename "$manifest")" "$manifest/pom.xml"; then
    log "resolving jars from $manifest/pom.xml"
    rm -rf "$out.tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$manifest/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$out.tmp" > "$CLICKSTREAM_DEPS/mvn.log" 2>&1; then
      tail -n 30 "$CLICKSTREAM_DEPS/mvn.log" >&2
      echo "[setup] Maven could not resolve $manifest/pom.xml (full log: $CLICKSTREAM_DEPS/mvn.log)" >&2
      exit 1
    fi
    rm -rf "$out" && mv "$out.tmp" "$out"
    mark_done "jars-$(basename "$manifest")" "$manifest/pom.xml"
  fi
}
copy_jars include/jars/kafka-broker "$CLICKSTREAM_KAFKA_LIBS"
# (the broker's list includes the Prometheus JMX agent, which serves its metrics)
copy_jars include/jars/spark-kafka "$CLICKSTREAM_SPARK_JARS_DIR"

# 3b. The JVM half of event parsing and of micro-batch tallies (include/spark/java), compiled against
#     pyspark's own jars into a jar beside the connector's, so every spark-submit that gets the connector
#     gets these too.
parser_jar="$CLICKSTREAM_SPARK_JARS_DIR/clickstream-spark-parser.jar"
mapfile -t parser_sources < <(find include/spark/java -name '*.java' | sort)
if [ ! -f "$parser_jar" ] || ! done_before spark-parser "${parser_sources[@]}"; then
  log "compiling the Spark event parser and batch tally"
  classes="$CLICKSTREAM_DEPS/spark-parser-classes"
  rm -rf "$classes"
  javac --release 17 -nowarn -encoding UTF-8 -cp "$SPARK_HOME/jars/*" -d "$classes" "${parser_sources[@]}"
  jar cf "$parser_jar.tmp" -C "$classes" . && mv "$parser_jar.tmp" "$parser_jar"
  rm -rf "$classes"
  mark_done spark-parser "${parser_sources[@]}"
fi

# 3c. The UI bundle (plugins/clickstream/www, React from the Airflow UI itself): `npm ci` from the lock file,
#     then `npm run build` into www/dist, which the api-server serves and the wheel ships. Redone when the
#     lock file, the build's config or a source changes, or when dist is gone.
www=plugins/clickstream/www
mapfile -t www_inputs < <(find "$www/src" "$www/public" -type f | sort; \
  printf '%s\n' "$www/package.json" "$www/package-lock.json" "$www/vite.config.ts" "$www/tsconfig.json")
if [ ! -f "$www/dist/clickstream.umd.js" ] || ! done_before www "${www_inputs[@]}"; then
  command -v npm >/dev/null || { echo "[setup] npm is needed to build the UI bundle: install nodejs and npm" >&2; exit 1; }
  log "building the UI bundle ($www/dist)"
  if ! (cd "$www" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) \
      > "$CLICKSTREAM_DEPS/www-build.log" 2>&1; then
    tail -n 30 "$CLICKSTREAM_DEPS/www-build.log" >&2
    echo "[setup] the UI bundle did not build (full log: $CLICKSTREAM_DEPS/www-build.log)" >&2
    exit 1
  fi
  mark_done www "${www_inputs[@]}"
fi

# 4. Go tools from the Go module proxy, pinned: statsd_exporter (Airflow's StatsD -> Prometheus), Docker
#    Compose itself, which checks docker-compose.yml in the tests (no Docker engine needed for that), and
#    vegeta, the serving benchmark's load generator. (Go's module cache makes a second build of each quick.)
go_tool() {  # go_tool BINARY PACKAGE@VERSION: build PACKAGE into .deps/bin/BINARY
  local binary=$1 package=$2
  if [ -x "$CLICKSTREAM_DEPS/bin/$binary" ] && [ "$(cat "$stamp_dir/go-$binary" 2>/dev/null)" = "$package" ]; then
    return
  fi
  command -v go >/dev/null || { echo "[setup] Go is needed to build $package: install golang" >&2; exit 1; }
  log "building $package"
  local gobin="$CLICKSTREAM_DEPS/go-build-$binary"
  rm -rf "$gobin"
  GOBIN="$gobin" GOFLAGS=-mod=mod go install "$package"
  mkdir -p "$CLICKSTREAM_DEPS/bin"
  mv "$gobin"/* "$CLICKSTREAM_DEPS/bin/$binary"
  rm -rf "$gobin"
  echo "$package" > "$stamp_dir/go-$binary"
}
go_tool statsd_exporter github.com/prometheus/statsd_exporter@v0.28.0
# vegeta drives the serving benchmark's HTTP load (bench/serving.py); only `make bench` asks for it.
if [ "$with_bench_tools" = 1 ]; then
  go_tool vegeta github.com/tsenart/vegeta/v12@v12.13.0
fi

# Docker Compose's go.mod has exclude directives, which `go install pkg@version` refuses: build it inside
# its own module, from the source the Go module proxy serves. Only the tests use it (`--test-tools`, which
# `make test` passes), so `make up` and `make demo` do not wait for it.
compose_module=github.com/docker/compose/v2 compose_version=v2.40.3
if [ "$with_test_tools" = 1 ] && { [ ! -x "$CLICKSTREAM_DEPS/bin/docker-compose" ] \
    || [ "$(cat "$stamp_dir/go-docker-compose" 2>/dev/null)" != "$compose_module@$compose_version" ]; }; then
  log "building $compose_module@$compose_version (docker compose, for checking docker-compose.yml)"
  compose_dir="$(go mod download -json "$compose_module@$compose_version" \
    | "$CLICKSTREAM_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  compose_src="$CLICKSTREAM_DEPS/go-src-compose"
  rm -rf "$compose_src" && cp -r "$compose_dir" "$compose_src" && chmod -R u+w "$compose_src"
  mkdir -p "$CLICKSTREAM_DEPS/bin"
  (cd "$compose_src" && go build -trimpath \
    -ldflags "-X $compose_module/internal.Version=$compose_version" \
    -o "$CLICKSTREAM_DEPS/bin/docker-compose" ./cmd)
  rm -rf "$compose_src"
  echo "$compose_module@$compose_version" > "$stamp_dir/go-docker-compose"
fi

# The tests start dozens of short-lived Spark drivers: a class-data archive of what a driver loads lets each
# map its classes already parsed and verified (devstack/spark_class_archive.py). Written once, by one run of
# a driver's work; redone when pyspark's jars, the connector's or the workload change.
if [ "$with_test_tools" = 1 ]; then
  archive="$CLICKSTREAM_DEPS/spark-cds/driver.jsa"
  mkdir -p "$(dirname "$archive")"
  { ls -l --time-style=+%s "$SPARK_HOME/jars" "$CLICKSTREAM_SPARK_JARS_DIR"; cat devstack/spark_class_archive.py; } \
    > "$archive.inputs"
  if [ ! -f "$archive" ] || ! done_before spark-class-archive "$archive.inputs"; then
    log "writing the Spark drivers' class-data archive for the tests (one run of a driver, about a minute)"
    "$CLICKSTREAM_VENV/bin/python" -m devstack.spark_class_archive "$archive"
    mark_done spark-class-archive "$archive.inputs"
  fi
fi

log "ready: venv $CLICKSTREAM_VENV, Spark $SPARK_HOME, jars in $CLICKSTREAM_DEPS"
