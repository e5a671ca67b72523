"""Bringing the local stack up and down (which parts it has: `devstack.topology`).

``up`` converges: whatever an earlier, interrupted ``up`` left behind (supervisord running or not, a metadata
DB half migrated, Airflow's components crash-looping on it), it starts what is missing, always migrates,
and then starts and waits for Airflow's components.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack import airflow_parts, supervisor
from devstack.errors import StackError
from devstack.paths import LOGS, SPARK_APPS, STATE
from devstack.ports import check_ports_free
from devstack.processes import pid_alive, wait_until
from devstack.supervisor import Part, supervisorctl
from devstack.topology import Topology


def up() -> None:
    """Bring the stack up from whatever state it is in; each phase is safe to repeat."""
    STATE.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(exist_ok=True)
    airflow_parts.load_secrets()
    topology = Topology.from_env()
    services = topology.service_parts()
    started = time.monotonic()
    if supervisor.running_pid() is None:
        print("[up] starting the services under supervisord", flush=True)
        check_ports_free(topology.taken_ports())
        # Streaming jobs started by this stack's Airflow serve Spark's metrics where Prometheus looks for them.
        os.environ.setdefault("AIRFLOW_VAR_CLICKSTREAM_SPARK_METRICS_PORT", str(topology.ports.spark_metrics))
        topology.prepare()
        # Spark jobs started by this stack's Airflow bind their driver and block manager to loopback, as every
        # other part does (Spark picks the host's first non-loopback address otherwise).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Airflow's components reach Kafka and Redis as their least-privileged users (a connection set by the
        # caller wins).
        connections = {**topology.kafka.airflow_connections(), **topology.redis.airflow_connections()}
        for name, uri in connections.items():
            if (
                name.startswith("AIRFLOW_CONN_KAFKA_")
                and name in os.environ
                and "sasl.username" not in os.environ[name]
            ):
                print(f"[up] warning: {name} from your environment has no login; the broker requires one "
                      "(unset it to use the stack's)", flush=True)  # fmt: skip
            os.environ.setdefault(name, uri)
        if topology.spark_master is not None and "spark://" not in os.environ.get("AIRFLOW_CONN_SPARK_DEFAULT", ""):
            print("[up] warning: AIRFLOW_CONN_SPARK_DEFAULT does not point at the cluster's Spark master "
                  f"({topology.spark_master.url}): the jobs will run outside it", flush=True)  # fmt: skip
        if topology.spark_master is not None:
            # Every spark-submit the stack's Airflow runs reads the cluster's secret from there.
            conf_dir = os.environ.setdefault("SPARK_CONF_DIR", str(topology.spark_master.auth.conf_dir))
            if Path(conf_dir) != topology.spark_master.auth.conf_dir:
                print(f"[up] warning: SPARK_CONF_DIR from your environment ({conf_dir}) is not the cluster's "
                      f"({topology.spark_master.auth.conf_dir}): Spark jobs will lack its secret and be refused",
                      flush=True)  # fmt: skip
        supervisor.start(services + topology.airflow_parts())
    else:
        print("[up] supervisord is already running: starting whatever it does not run", flush=True)
        configured = supervisor.CONF.read_text() if supervisor.CONF.exists() else ""
        missing = [p.name for p in services if f"[program:{p.name}]" not in configured]
        if missing:
            raise StackError(
                f"the running stack has no {', '.join(missing)}: it was started with another topology or database "
                f"(CLICKSTREAM_TOPOLOGY={topology.name} now). Run `make down`, then `make up`"
            )
        for broker in topology.brokers:
            if broker.config_file.exists() and "INTERNAL://" not in broker.config_file.read_text():
                raise StackError(
                    "the running stack's Kafka broker predates its SASL listeners: run `make down`, then `make up` "
                    "(the data is kept)"
                )
        start_programs([p.name for p in services])
    wait_healthy(services, started)
    topology.check_quorum()
    topology.kafka.ensure_principals()  # idempotent: a restarted stack gets any user or ACL it lacks
    print("[up] kafka                  users and ACLs in place", flush=True)
    if topology.postgres is not None:
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", topology.postgres.url)
        topology.postgres.ensure_database()
    # Always: a first `up` stopped mid-migration leaves a DB the components refuse to run on.
    print("[up] migrating the Airflow metadata DB", flush=True)
    airflow_parts.migrate()
    print("[up] starting Airflow", flush=True)
    since = time.time()
    components = topology.airflow_parts(since)
    started = time.monotonic()
    start_programs([p.name for p in components])
    wait_healthy(components, started)
    print(f"[up] Airflow UI http://127.0.0.1:{airflow_parts.api_port()}", flush=True)
    print(airflow_parts.login_hint(), flush=True)


def grant(topic: str, dead_letter_topic: str) -> None:
    """The pipeline principals' rights on other topics (the running broker keeps them)."""
    topology = Topology.from_env()
    broker = next((b for b in topology.brokers if b.healthy()), None)
    if broker is None:
        raise StackError("the stack's Kafka broker is not running: `make up` first")
    broker.grant(events=topic, dead_letters=dead_letter_topic)
    print(f"[grant] the pipeline's principals may use {topic} and {dead_letter_topic} as they use clickstream-events")


def start_programs(names: list[str]) -> None:
    """Start each program that is not running: stopped, never started, or given up on (FATAL) alike."""
    result = supervisorctl("start", *names)
    failures = [line for line in result.stdout.splitlines() if "ERROR" in line and "already started" not in line]
    if failures or (result.returncode != 0 and not result.stdout):
        raise StackError(f"supervisorctl could not start {', '.join(names)}: {result.stdout} {result.stderr}")


def log_tail(path: Path, limit: int = 3000) -> str:
    """The end of a part's log without Java stack frames, so the lines that say what went wrong fit."""
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(unreadable: {error})"
    lines = [line for line in text.splitlines() if not JAVA_FRAME.match(line)]
    return "\n".join(lines)[-limit:] or "(empty)"


JAVA_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")
# Health checks wait on sockets, not CPU: polled side by side, one slow check does not delay the others.
HEALTH_CHECKS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="health")


def wait_healthy(parts: list[Part], started_at: float) -> None:
    """Poll every part until all answer their health check; fail naming the first that does not.

    Parts start together under supervisord, so each one's start-up time is measured from the same moment.
    A part supervisord gave up on (FATAL: it kept exiting) fails at once rather than at its timeout.
    """
    waiting = list(parts)
    states: dict[str, str] = {}
    states_read = 0.0
    while waiting:
        checks = {part.name: HEALTH_CHECKS.submit(part.healthy) for part in waiting}
        elapsed = time.monotonic() - started_at
        if elapsed - states_read >= 5:  # supervisorctl is a Python start: once every few seconds, for all
            states, states_read = program_states(), elapsed
        for part in list(waiting):
            if checks[part.name].result():
                waiting.remove(part)
                where = f" on 127.0.0.1:{part.port}" if part.port else ""
                print(f"[up] {part.name:<22} healthy{where} {time.monotonic() - started_at:.1f}s", flush=True)
                continue
            state = states.get(part.name, "")
            if elapsed > part.start_timeout or state == "FATAL":
                status = supervisorctl("status", part.name).stdout.strip() or "not running"
                reason = (
                    "kept exiting, and supervisord gave up on it"
                    if state == "FATAL"
                    else f"did not become healthy within {part.start_timeout:.0f}s"
                )
                raise StackError(
                    f"{part.name} {reason} ({status}); its log {part.log_file} ends:\n{log_tail(part.log_file)}"
                )
        time.sleep(0.5)


def program_states(listing: str | None = None) -> dict[str, str]:
    """Each supervised program's state (RUNNING, STARTING, BACKOFF, FATAL, ...) from ``supervisorctl status``."""
    lines = (supervisorctl("status").stdout if listing is None else listing).splitlines()
    return {fields[0]: fields[1] for fields in (line.split() for line in lines) if len(fields) >= 2}


def stop_spark_jobs() -> int:
    """Stop the Spark applications this checkout's Airflow started detached (supervisord does not own them).

    Each gets SIGTERM, so its running batch commits, while Kafka and Redis are still up.
    """
    from clickstream.spark_job import SparkJobHandle

    jobs = SparkJobHandle.running_from(SPARK_APPS, airflow_home=os.environ.get("AIRFLOW_HOME"))
    for job in jobs:
        print(f"[down] stopping Spark job {Path(job.application).name} (pid {job.pid})")
        job.stop(grace_s=60)
    return len(jobs)


def down() -> None:
    pid = supervisor.running_pid()
    if pid is None:
        stop_spark_jobs()
        print("[down] the stack is not running")
        return
    # Airflow first: a scheduler or triggerer still running would restart the Spark job stopped next.
    supervisor.stop_together(f"airflow-{component}" for component in airflow_parts.COMPONENTS)
    stop_spark_jobs()
    # Then the rest at once (supervisord's shutdown would stop them one by one), and supervisord itself.
    supervisor.stop_together()
    supervisorctl("shutdown")
    if not wait_until(lambda: not pid_alive(pid), 90, interval=0.5):
        os.kill(pid, signal.SIGKILL)
    print("[down] stopped")


def status() -> int:
    if supervisor.running_pid() is None:
        print("the stack is not running")
        return 1
    print(supervisorctl("status").stdout, end="")
    return 0
