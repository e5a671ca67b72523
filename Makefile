# The stable interface: every target sets itself up first and is safe to run again.
SHELL := /bin/bash
.DEFAULT_GOAL := help
RUN := source scripts/env.sh &&

.PHONY: help setup up down status demo test bench lint lock

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup:  ## Install the venv, the Kafka and Spark connector jars, Redis, Chromium and the UI bundle (idempotent)
	@scripts/setup.sh

up: setup  ## Start the local stack (Kafka, Redis, Airflow) under supervisord and wait until healthy
	@$(RUN) python -m devstack up

down:  ## Stop the local stack
	@$(RUN) [ -x "$$CLICKSTREAM_VENV/bin/python" ] && python -m devstack down || true

status:  ## Show what the local stack runs
	@$(RUN) python -m devstack status

demo: up  ## The main job, end to end on the local stack
	@scripts/demo.sh

test:  ## The whole test suite: unit, integration and DAG tests against real services (sets itself up)
	@scripts/setup.sh --test-tools
	@scripts/test.sh

bench:  ## Benchmarks, each beside a reference tool measured in the same run (sets itself up)
	@scripts/setup.sh --bench-tools
	@$(RUN) python -m bench.run

lint: setup  ## ruff
	@$(RUN) ruff check plugins dags include scripts devstack tests bench

lock:  ## Re-pin requirements/lock.txt from requirements/base.in
	@$(RUN) uv pip compile --python-version 3.11 --quiet --no-header requirements/base.in -o requirements/lock.txt
