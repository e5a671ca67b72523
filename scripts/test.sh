#!/usr/bin/env bash
# Runs the whole suite. Tests start the services they need (Kafka, Redis, Spark) themselves.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLICKSTREAM_HOME"
ruff check plugins dags include scripts devstack tests bench
unset PYTEST_ADDOPTS  # the suite runs as configured in pyproject.toml, whatever the caller's shell set
set +e
# Two workers, each taking the next test module as it frees up: most tests wait on JVMs, schedulers and
# brokers rather than compute, so the two cores overlap them. Each worker has its own broker, Redis,
# Spark session and Airflow metadata DB (tests/conftest.py); stacks take free ports. A module runs on one
# worker, in order: the whole-stack tests share one `make up` that way (tests/integration/test_running_stack.py).
# Modules go out longest first, as tests/conftest.py orders them, not by xdist's own count of their tests.
python -m pytest -n 2 --dist loadscope --no-loadscope-reorder "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
